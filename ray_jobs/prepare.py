"""Prepare a real data set: `python -m ray_jobs.prepare <recipe.yaml> --out <dir>`.

Reads a raw log and its side tables as the recipe says (docs/data.md), fits every encoder on
the training split and writes Parquet splits + spec.json (`ray_jobs.data.prepare`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ray_jobs.core.cli import exit_code
from ray_jobs.data.prepare import prepare
from ray_jobs.data.recipe import load_recipe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ray_jobs.prepare", description=__doc__.splitlines()[0])
    parser.add_argument("recipe", help="recipe YAML (see docs/data.md)")
    parser.add_argument("--out", required=True, help="output data set directory")
    parser.add_argument("--raw-dir", type=Path, default=None,
                        help="read every raw file by its name from this directory instead of the recipe's paths")
    parser.add_argument("--stream", action="store_true",
                        help="bounded memory: passes over record batches, for logs larger than memory (same output)")
    parser.add_argument("--batch-rows", type=int, default=None, help="--stream: rows per record batch")
    args = parser.parse_args(argv)

    def body() -> None:
        start = time.perf_counter()
        summary = prepare(load_recipe(args.recipe), args.out, args.raw_dir, streaming=args.stream,
                          batch_rows=args.batch_rows)
        print(json.dumps({"out": str(args.out), "rows": summary["rows"],
                          "seconds": round(time.perf_counter() - start, 2)}))

    return exit_code(body)


if __name__ == "__main__":
    sys.exit(main())
