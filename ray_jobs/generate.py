"""Generate a synthetic data set: `python -m ray_jobs.generate --out <dir> [--preset P] [--rows N]`.

The double-seesaw generator (`ray_jobs.data.synthetic` documents its model): 3 domains, 4 tasks,
Zipf ids and stored true probabilities, written as train/valid/test Parquet plus spec.json.
With `--raw census|log` it writes raw files for `ray_jobs.prepare` instead (`ray_jobs.data.raw_files`):
`census` a headerless census-style CSV at --out, `log` a chunked interaction log of --rows rows
in CSV files under --out (the prepare scale benchmark).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ray_jobs.core.cli import exit_code
from ray_jobs.core.config import with_overrides
from ray_jobs.core.log import logger
from ray_jobs.data.synthetic import PRESETS, generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default")
    parser.add_argument("--rows", type=int, help="total rows over all splits")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--conflict-fraction", type=float)
    parser.add_argument("--raw", choices=("census", "log"), help="write raw files for prepare instead of a data set")
    parser.add_argument("--files", type=int, default=4, help="--raw log: number of CSV files")
    args = parser.parse_args(argv)

    def body() -> None:
        if args.raw:
            from ray_jobs.data.raw_files import write_census, write_log

            start, seed = time.perf_counter(), args.seed or 0
            if args.raw == "census":
                write_census(args.out, rows=args.rows or 20_000, seed=seed)
            else:
                write_log(args.out, rows=args.rows or 1_000_000, files=args.files, seed=seed)
            logger.info("%s: raw %s, %s rows in %.1fs", args.out, args.raw, args.rows, time.perf_counter() - start)
            return
        flags = {"rows": args.rows, "seed": args.seed, "conflict_fraction": args.conflict_fraction}
        config = with_overrides(PRESETS[args.preset], {k: v for k, v in flags.items() if v is not None},
                                where=f"preset {args.preset}")
        start = time.perf_counter()
        generate(config, args.out)
        logger.info("%s: %d rows, %d domains, %d tasks in %.1fs", args.out, config.rows, len(config.domains),
                    len(config.tasks), time.perf_counter() - start)

    return exit_code(body)


if __name__ == "__main__":
    sys.exit(main())
