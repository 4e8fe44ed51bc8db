"""Export a trained run: `python -m ray_jobs.export --checkpoint runs/<run> --out <dir>`.

Loads the sharded DCP checkpoint (written by any number of workers) into one unsharded model
and writes a `torch.export` program with a dynamic batch, the spec, and the data set's
encoders when it was prepared from raw logs (`ray_jobs.serving.export` documents the files).
"""

from __future__ import annotations

import argparse
import sys

from ray_jobs.core.cli import exit_code
from ray_jobs.serving.export import export_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="run directory (or one checkpoint directory)")
    parser.add_argument("--out", required=True, help="export directory to write")
    args = parser.parse_args(argv)
    return exit_code(lambda: export_run(args.checkpoint, args.out))


if __name__ == "__main__":
    sys.exit(main())
