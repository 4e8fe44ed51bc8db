"""Evaluate a trained run: `python -m ray_jobs.evaluate --checkpoint <run dir> [--data <dir>]`.

Reloads the sharded DCP checkpoint on any number of workers (DCP reshards to the new plan),
scores a split and prints the same domain x task table the train job printed.
"""

from __future__ import annotations

import argparse
import sys

from ray_jobs.core.cli import exit_code
from ray_jobs.core.log import logger
from ray_jobs.core.tables import cell, cells_table
from ray_jobs.data.dataset import SPLITS
from ray_jobs.training.scoring import score_checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="run directory (or one checkpoint directory)")
    parser.add_argument("--data", help="data set directory (default: the one trained on)")
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument("--num-workers", type=int, help="workers to evaluate on (any count)")
    args = parser.parse_args(argv)

    def body() -> None:
        metrics, cells = score_checkpoint(args.checkpoint, args.data, args.split, args.num_workers)
        print(cells_table(cells))
        logger.info("%s mean AUC %s, mean GAUC %s on %d worker(s)", args.split, cell(metrics[f"{args.split}_mean_auc"]),
                    cell(metrics[f"{args.split}_mean_gauc"]), metrics["world_size"])

    return exit_code(body)


if __name__ == "__main__":
    sys.exit(main())
