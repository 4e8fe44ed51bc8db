"""Training speed, side by side with a plain-PyTorch reference: `python -m ray_jobs.benchmark`.

Trains a fixed number of steps through the real path (Ray Data -> TorchTrainer -> DMP-sharded
EBC) for each table size, batch size, model and worker count, and the reference right before
and after each run, so every ratio compares numbers taken seconds apart
(`ray_jobs.benchmarks.end_to_end` says what each column measures).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ray_jobs.benchmarks.end_to_end import BenchmarkPlan, run_benchmark
from ray_jobs.core.cli import exit_code


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(float(v)) for v in text.split(","))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="sharedbottom,pepnet")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--table-rows", default="100000,10000000")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch-sizes", default="512,2048", help="per-worker batch sizes (the reference uses each too)")
    parser.add_argument("--batches-per-fetch", default=",".join(map(str, BenchmarkPlan.batches_per_fetch)),
                        help="batches per Ray Data fetch, comma-separated to compare (1: the pre-fetching path)")
    parser.add_argument("--gpu", action="store_true",
                        help="one GPU per worker; run it on a GPU node (the driver measures the GPU's peaks and "
                             "trains the reference there); emb %%bw is then the share of HBM bandwidth")
    parser.add_argument("--data-root", type=Path, default=BenchmarkPlan.data_root)
    parser.add_argument("--out", type=Path, default=BenchmarkPlan.out)
    args = parser.parse_args(argv)
    plan = BenchmarkPlan(archs=tuple(args.archs.split(",")), workers=_ints(args.workers),
                         table_rows=_ints(args.table_rows), batch_sizes=_ints(args.batch_sizes),
                         batches_per_fetch=_ints(args.batches_per_fetch), steps=args.steps, warmup=args.warmup,
                         gpu=args.gpu, data_root=args.data_root, out=args.out)
    return exit_code(lambda: run_benchmark(plan))


if __name__ == "__main__":
    sys.exit(main())
