"""Generate a synthetic data set: `python -m ray_jobs.generate --out <dir> [--preset P] [--rows N]`.

The double-seesaw generator (`ray_jobs.data.synthetic` documents its model): 3 domains, 4 tasks,
Zipf ids and stored true probabilities, written as train/valid/test Parquet plus spec.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ray_jobs.core.cli import exit_code, preset_from_args
from ray_jobs.core.log import logger
from ray_jobs.data.synthetic import PRESETS, generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default")
    parser.add_argument("--rows", type=int, help="total rows over all splits")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--conflict-fraction", type=float)
    args = parser.parse_args(argv)

    def body() -> None:
        config = preset_from_args(PRESETS, args, ("rows", "seed", "conflict_fraction"))
        start = time.perf_counter()
        generate(config, args.out)
        logger.info("%s: %d rows, %d domains, %d tasks in %.1fs", args.out, config.rows, len(config.domains),
                    len(config.tasks), time.perf_counter() - start)

    return exit_code(body)


if __name__ == "__main__":
    sys.exit(main())
