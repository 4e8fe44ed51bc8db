"""What the training shuffle costs the input pipeline, and what reading a split once per job saves.

For each `data.shuffle` mode, streams every epoch's training dataset exactly as a worker gets
it (`data.ingest`: the epoch's dataset, Ray Train's split via `SeesawIngest`, the worker's
local shuffle buffer, the train loop's collate) in this process, 1 consumer, and reports
samples/s over all epochs (the shuffle's execution included) and the time to the first batch
of an epoch. Then iterates the validation split once per epoch, read from Parquet each time
vs materialised once (`data.in_memory_max_rows`). Same process, same run: ratios compare.
The modes (and the full shuffle in the old 4,096-row blocks) run in `--repeats` interleaved
rounds (none, local, full, full in small blocks, none, ...); each mode's
row is its fastest round, with the slowest beside it: the first round also pays Ray Data's
warm-up (worker processes, file cache), and a shared machine's load moves within minutes.

    python -m ray_jobs.benchmarks.shuffle_cost --data data/synthetic/default --epochs 3 --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

import pandas as pd
import ray
import ray.data

from modules.model import SeesawModel
from ray_jobs.core.config import DataConfig, JobConfig, TrainConfig
from ray_jobs.core.tables import markdown
from ray_jobs.data.collate import Collator, FetchCollator
from ray_jobs.data.dataset import Dataset, prepare_dataset
from ray_jobs.data import ingest
from ray_jobs.data.ingest import ray_datasets, local_shuffle, train_split, training_ingest


def _stream(ds: ray.data.Dataset, name: str, collate: Collator, config: JobConfig,
            shuffle: tuple[int, int] | None) -> tuple[int, float, float]:
    """(rows, seconds, seconds to the first batch) of one pass, 1 consumer."""
    iterator = training_ingest().configure({name: ds}, 1, None, None)[0][name]
    buffer, seed = shuffle or (None, None)
    rows, start, first = 0, time.perf_counter(), None
    for batches in iterator.iter_torch_batches(
            batch_size=config.data.batch_size * config.data.batches_per_fetch, prefetch_batches=2,
            collate_fn=FetchCollator(collate, config.data.batch_size),
            local_shuffle_buffer_size=buffer, local_shuffle_seed=seed):
        first = first if first is not None else time.perf_counter() - start
        rows += sum(int(b.labels.shape[0]) for b in batches)
    return rows, time.perf_counter() - start, first or 0.0


# (label, data.shuffle, rows per block of a fully shuffled split): the last is the full shuffle
# in the 4,096-row blocks it used before `ingest.SHUFFLE_ROWS_PER_BLOCK` (its all-to-all grows
# with blocks^2 and must finish before the epoch's first batch)
MODES = (("none", "none", ingest.SHUFFLE_ROWS_PER_BLOCK), ("local", "local", ingest.SHUFFLE_ROWS_PER_BLOCK),
         ("full", "full", ingest.SHUFFLE_ROWS_PER_BLOCK),
         (f"full, {ingest.ROWS_PER_BLOCK:,}-row blocks", "full", ingest.ROWS_PER_BLOCK))


def _epochs(dataset: Dataset, config: JobConfig, collate: Collator, shuffle_rows_per_block: int) -> dict:
    """One round of a shuffle mode: read the split (materialise), stream every epoch."""
    start = time.perf_counter()
    default, ingest.SHUFFLE_ROWS_PER_BLOCK = ingest.SHUFFLE_ROWS_PER_BLOCK, shuffle_rows_per_block
    try:
        datasets = ray_datasets(dataset, ("train",), config, epochs=config.train.epochs)
    finally:
        ingest.SHUFFLE_ROWS_PER_BLOCK = default
    setup = time.perf_counter() - start
    total_rows, total_s, firsts = 0, setup, []
    for epoch in range(config.train.epochs):
        name = train_split(config, epoch)
        shuffle = local_shuffle(config, dataset.splits["train"].rows, epoch, 0)
        n, seconds, first = _stream(datasets[name], name, collate, config, shuffle)
        total_rows, total_s = total_rows + n, total_s + seconds
        firsts.append(first)
    return {"epochs": config.train.epochs, "rows": total_rows, "read once (s)": round(setup, 2),
            "samples/s": round(total_rows / total_s), "first batch of an epoch (s)": round(max(firsts), 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/synthetic/default", help="data set directory (generated if missing)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds of the modes")
    args = parser.parse_args(argv)
    ray.init(address="local", include_dashboard=False, configure_logging=False, log_to_driver=False)
    base = JobConfig(data=DataConfig(path=args.data, batch_size=args.batch_size), train=TrainConfig(epochs=args.epochs))
    dataset = prepare_dataset(base)
    model = SeesawModel(dataset.spec, "sharedbottom", device="meta")
    collate = Collator(dataset.spec, model.kjt_keys)
    rounds: dict[str, list[dict]] = {label: [] for label, _, _ in MODES}
    for _ in range(args.repeats):
        for label, mode, rows_per_block in MODES:
            config = replace(base, data=replace(base.data, shuffle=mode))
            rounds[label].append(_epochs(dataset, config, collate, rows_per_block))
    table = []
    for mode, runs in rounds.items():
        best = max(runs, key=lambda r: r["samples/s"])
        table.append({"shuffle": mode, **best, "slowest round samples/s": min(r["samples/s"] for r in runs)})
    baseline = table[0]["samples/s"]
    for row in table:
        row["vs none"] = f"x{row['samples/s'] / baseline:.2f}"
    print(markdown(pd.DataFrame(table)))
    evaluation = []
    for label, max_rows in (("Parquet every epoch", 0), ("materialised once", base.data.in_memory_max_rows)):
        config = replace(base, data=replace(base.data, in_memory_max_rows=max_rows))
        start = time.perf_counter()
        ds = ray_datasets(dataset, ("valid",), config)["valid"]
        for _ in range(args.epochs):
            _stream(ds, "valid", collate, config, None)
        evaluation.append({"validation split": label, "epochs": args.epochs,
                           "seconds": round(time.perf_counter() - start, 2)})
    print(markdown(pd.DataFrame(evaluation)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
