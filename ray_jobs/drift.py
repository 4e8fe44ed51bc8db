"""Generate a drifting day-by-day stream: `python -m ray_jobs.drift --out <dir> [--days D]`.

Items are born and die daily and carry raw 64-bit ids (`ray_jobs.data.drift` documents the
model); the day folders feed pass-by-pass training (`python -m ray_jobs.train --passes <dir>`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ray_jobs.core.cli import exit_code, preset_from_args
from ray_jobs.core.log import logger
from ray_jobs.data.drift import PRESETS, generate, stream_stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default")
    parser.add_argument("--days", type=int)
    parser.add_argument("--rows-per-day", type=int)
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)

    def body() -> None:
        config = preset_from_args(PRESETS, args, ("days", "rows_per_day", "seed"))
        generate(config, args.out)
        logger.info("%s: %d days x %d rows; distinct raw ids %s", args.out, config.days, config.rows_per_day,
                    stream_stats(args.out)["distinct"])

    return exit_code(body)


if __name__ == "__main__":
    sys.exit(main())
