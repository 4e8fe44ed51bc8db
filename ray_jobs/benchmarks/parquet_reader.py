"""What a split read costs with Ray Data's two Parquet readers, side by side in one Ray session.

Ray 2.60 routes `ray.data.read_parquet` through its V2 datasource by default, which reads the
files' footers on a pool of `FooterReader` actors (32 by default, each a new Python process)
for every read. `ray_jobs.data.ingest.read_parquet` takes the V1 reader, in a block count
fixed by the data, instead; this measures why: wall seconds of `read_parquet(files).materialize()` (what a job does once per small
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

from typing import Callable

import pyarrow.parquet as pq
import ray
import ray.data

from ray_jobs.core.tables import text
from ray_jobs.data.dataset import SPLITS, split_files
from ray_jobs.data.ingest import read_parquet

def _default_v2(files: list[str], rows: int) -> ray.data.Dataset:
    ray.data.DataContext.get_current().use_datasource_v2 = True
    return ray.data.read_parquet(files)


def _seesaw(files: list[str], rows: int) -> ray.data.Dataset:
    return read_parquet(files, columns=pq.read_schema(files[0]).names, rows=rows)


READERS: dict[str, Callable[[list[str], int], ray.data.Dataset]] = {
    "Seesaw (V1, fixed blocks)": _seesaw, "V2 (Ray 2.60 default)": _default_v2}


def read_seconds(files: list[str], reader: Callable[[list[str], int], ray.data.Dataset]) -> float:
    """Wall seconds of one read of `files` into the object store with `reader`."""
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    start = time.perf_counter()
    read = reader(files, rows).materialize()
    seconds = time.perf_counter() - start
    assert read.count() == rows
    return seconds


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
    read_seconds(files["valid"], _seesaw)  # warm the worker pool once, for both
    seconds: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeats):
        for split, split_paths in files.items():
            for name, reader in READERS.items():
                seconds.setdefault((split, name), []).append(read_seconds(split_paths, reader))
    ray.shutdown()
    table = []
    for split, split_paths in files.items():
        ours, v2 = (statistics.median(seconds[split, name]) for name in READERS)
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in split_paths)
        table.append([split, f"{rows:,}", str(len(split_paths)), f"{ours:.2f}", f"{v2:.2f}", f"{v2 / ours:.1f}"])
    print(text(table, ["split", "rows", "files", "Seesaw s (median)", "V2 s (median)", "V2 / Seesaw"], rule=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
