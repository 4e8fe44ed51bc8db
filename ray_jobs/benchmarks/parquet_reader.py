"""What a split read costs with Ray Data's two Parquet readers, side by side in one Ray session.

Ray 2.60 routes `ray.data.read_parquet` through its V2 datasource by default, which reads the
files' footers on a pool of `FooterReader` actors (32 by default, each a new Python process)
for every read. `ray_jobs.data.ingest.read_parquet` takes the V1 reader instead; this measures
why: wall seconds of `read_parquet(files).materialize()` (what a job does once per small
split), alternating the readers so that both see the same machine load.

    python -m ray_jobs.benchmarks.parquet_reader --data data/synthetic/tiny --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ray
import ray.data

from ray_jobs.core.tables import text
from ray_jobs.data.dataset import SPLITS, split_files

READERS = {"V1 (Seesaw)": False, "V2 (Ray 2.60 default)": True}


def read_seconds(files: list[str], use_v2: bool) -> tuple[float, int]:
    """(wall seconds, rows) of one read of `files` into the object store with the chosen reader."""
    ray.data.DataContext.get_current().use_datasource_v2 = use_v2
    start = time.perf_counter()
    rows = ray.data.read_parquet(files).materialize().count()
    return time.perf_counter() - start, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/synthetic/tiny"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-cpus", type=int, default=4)
    args = parser.parse_args(argv)
    files = {split: split_files(args.data, split) for split in SPLITS}
    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(prefix="seesaw-bench-", dir="/tmp"))
    ray.data.DataContext.get_current().enable_progress_bars = False
    read_seconds(files["valid"], use_v2=False)  # warm the worker pool once, for both
    seconds: dict[tuple[str, str], list[float]] = {}
    rows: dict[str, int] = {}
    for _ in range(args.repeats):
        for split, split_paths in files.items():
            for reader, use_v2 in READERS.items():
                wall, rows[split] = read_seconds(split_paths, use_v2)
                seconds.setdefault((split, reader), []).append(wall)
    ray.shutdown()
    table = []
    for split in files:
        v1, v2 = (statistics.median(seconds[split, r]) for r in READERS)
        table.append([split, f"{rows[split]:,}", str(len(files[split])), f"{v1:.2f}", f"{v2:.2f}", f"{v2 / v1:.1f}"])
    print(text(table, ["split", "rows", "files", "V1 s (median)", "V2 s (median)", "V2 / V1"], rule=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
