"""What Ray Data costs the consuming process per batch it hands out, and per train-step batch
when several are fetched at once (`data.batches_per_fetch`).

Iterates a materialised split with the train loop's own collate, in this process, and reports
wall and CPU ms (all threads of this process) per fetch and per train-step batch. The CPU of
this process is the share that, in a Ray Train worker, competes with the step for the GIL.

    python -m ray_jobs.benchmarks.fetch_cost --data data/benchmark/items_100000
"""

from __future__ import annotations

import argparse
import itertools
import resource
import sys
import time
from pathlib import Path

import ray
import ray.data

from modules.model import SeesawModel
from modules.spec import DatasetSpec
from ray_jobs.data.collate import Collator, FetchCollator
from ray_jobs.data.dataset import split_files
from ray_jobs.data.ingest import read_parquet
from ray_jobs.core.tables import text


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fetch_cost(dataset: ray.data.Dataset, collate: Collator, batch_size: int, per_fetch: int,
               rows: int) -> dict[str, float]:
    """ms per fetch and per batch (wall, and CPU of this process) over the first `rows` rows."""
    fetches = dataset.iterator().iter_torch_batches(batch_size=batch_size * per_fetch, prefetch_batches=2,
                                                    collate_fn=FetchCollator(collate, batch_size))
    wanted = max(1, rows // (batch_size * per_fetch))
    start_wall, start_cpu, count = time.perf_counter(), _cpu_s(), 0
    for _ in itertools.islice(fetches, wanted):
        count += 1
    wall, cpu = time.perf_counter() - start_wall, _cpu_s() - start_cpu
    return {"fetch_wall_ms": wall / count * 1e3, "fetch_cpu_ms": cpu / count * 1e3,
            "batch_cpu_ms": cpu / (count * per_fetch) * 1e3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/benchmark/items_100000"))
    parser.add_argument("--arch", default="sharedbottom")
    parser.add_argument("--batch-sizes", default="512,2048")
    parser.add_argument("--batches-per-fetch", default="1,8")
    parser.add_argument("--rows", type=int, default=200_000, help="rows iterated per measurement")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    spec = DatasetSpec.load(args.data)
    collate = Collator(spec, SeesawModel(spec, args.arch, device="meta").kjt_keys)
    dataset = read_parquet(split_files(args.data, "train"), columns=list(spec.required_columns())).materialize()
    rows = []
    for batch_size, per_fetch in itertools.product([int(b) for b in args.batch_sizes.split(",")],
                                                   [int(k) for k in args.batches_per_fetch.split(",")]):
        for _ in range(args.repeats):
            r = fetch_cost(dataset, collate, batch_size, per_fetch, args.rows)
            rows.append([str(batch_size), str(per_fetch), *(f"{r[k]:.2f}" for k in ("fetch_wall_ms", "fetch_cpu_ms",
                                                                                      "batch_cpu_ms"))])
    print(text(rows, ["batch", "per fetch", "fetch wall ms", "fetch CPU ms", "CPU ms per train batch"], rule=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
