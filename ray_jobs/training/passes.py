"""Pass-by-pass training over day partitions: `python -m ray_jobs.train --passes <dir>`.

<dir> holds `spec.json` and one folder of Parquet files per day (folder names sort in day
order, e.g. `day-000` or `2024-05-01`). For each day, in order, every worker:

1. scores the day with the model trained on the days before it: progressive validation, the
   next-day AUC/GAUC per domain x task over all workers' predictions (day 1 has no model yet);
2. trains one epoch on it, its rows shuffled within the day (`data.shuffle`), raw ids of the `collision` features remapped into bounded tables
   (one global remapping state on every worker, `sharding.bounded`);
3. merges the remapper's unfinished eviction window and checks the replicas agree;
4. checkpoints model, optimizer, remapping state (ids, counts, recency, admission candidates,
   counters) and the history of all passes.

A rerun with the same `--run-name` resumes after the last checkpointed pass (Ray Train restores
the run's latest checkpoint): it trains only the days not done yet, e.g. a new day's folder.
Ray Data keeps block order (`preserve_order`) and the day's shuffle buffer is seeded by
(train.seed, pass index, rank), so a resumed run trains on the same batches as an
uninterrupted one. The run directory gets `passes.md`, `passes.csv` and `pass_cells.csv`.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.distributed as dist

from modules.batch import Batch
from modules.collision import bounded_spec, check_features, for_keys
from modules.model import embedding_tables
from modules.spec import DatasetSpec
from modules.strict import ConfigError
from ray_jobs.core.config import JobConfig, dump_config
from ray_jobs.core.errors import DataError
from ray_jobs.core.log import logger, rank0
from ray_jobs.core.paths import local_only
from ray_jobs.core.run_dir import JOB_FILE
from ray_jobs.core.storage import local_path
from ray_jobs.data.collate import Collator
from ray_jobs.data.dataset import Dataset, validate_split
from ray_jobs.data.ingest import epoch_seed
from ray_jobs.evaluation.metrics import summary
from ray_jobs.evaluation.predictions import gather, predict
from ray_jobs.reports.passes import PASSES_FILE, format_passes, write_report
from ray_jobs.training.epoch import EpochStats, train_epoch
from ray_jobs.training.loop import save_checkpoint
from ray_jobs.training.worker import WorkerContext, build_sharded_model, shard_batches
from sharding.bounded import BoundedShardedModel
from sharding.checkpoint import load_sharded, save_sharded
from sharding.optim import combined_optimizer

CHECKPOINTS_DIR = "checkpoints"  # local runs: one checkpoint folder per pass


def day_partitions(root: str | Path) -> list[str]:
    """The day folders under `root` (those holding Parquet files), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: passes directory not found (make one with `python -m ray_jobs.drift --out {root}`)")
    days = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.parquet")))
    if not days:
        raise DataError(f"{root}: no day folders with Parquet files")
    return days


def load_passes(root: str | Path, config: JobConfig) -> Dataset:
    """Spec and validated day partitions; raw 64-bit ids are accepted in the bounded columns only."""
    days = day_partitions(root)
    spec = DatasetSpec.load(root)
    check_features(config.collision, spec)
    raw = frozenset(f.key for f in config.collision)
    return Dataset(Path(root), spec, {day: validate_split(root, day, spec, raw) for day in days})


# ---------------------------------------------------------------- per worker

class PassIO:
    """Where a worker's pass loop gets its batches and puts its checkpoints (Ray or local)."""

    rank: int
    local_world_size: int | None = None

    def batches(self, day: str, config: JobConfig, collate: Collator, shuffle_pass: int | None = None) -> Iterable[Batch]:
        """The day's batches; `shuffle_pass` (training): rows shuffled within the day, seeded by
        (train.seed, pass index), unless `data.shuffle` is none."""
        raise NotImplementedError

    @contextmanager
    def latest(self) -> Iterator[str | None]:
        """The latest checkpoint directory to resume from (None: start fresh)."""
        raise NotImplementedError

    def save(self, metrics: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
             progress: dict[str, Any], files: dict[str, Any]) -> None:
        raise NotImplementedError


class RayIO(PassIO):
    """Inside a Ray Train worker: Ray Data shards, checkpoints reported to Ray Train."""

    def __init__(self) -> None:
        import ray.train

        self.rank = ray.train.get_context().get_world_rank()

    def batches(self, day: str, config: JobConfig, collate: Collator, shuffle_pass: int | None = None) -> Iterable[Batch]:
        shuffle = None
        if shuffle_pass is not None and config.data.shuffle != "none":  # Ray Data's local buffer, per rank
            shuffle = (config.data.shuffle_buffer_rows, epoch_seed(config.train.seed, shuffle_pass, self.rank))
        return shard_batches(day, config, collate, shuffle)

    @contextmanager
    def latest(self) -> Iterator[str | None]:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            yield None
            return
        with checkpoint.as_directory() as directory:
            yield directory

    def save(self, metrics: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
             progress: dict[str, Any], files: dict[str, Any]) -> None:
        save_checkpoint(metrics, model, optimizer, progress, self.rank, files)


class LocalIO(PassIO):
    """One process, no Ray (policy studies, tests): reads the day's Parquet files (in order to
    score, shuffled in memory to train) and writes one checkpoint folder per pass under
    `out_dir/checkpoints`."""

    def __init__(self, dataset: Dataset, out_dir: str | Path) -> None:
        self.rank, self.local_world_size = 0, 1
        self.dataset = dataset
        self.checkpoints = Path(out_dir) / CHECKPOINTS_DIR

    def batches(self, day: str, config: JobConfig, collate: Collator, shuffle_pass: int | None = None) -> Iterable[Batch]:
        columns = list(self.dataset.spec.required_columns())
        if shuffle_pass is not None and config.data.shuffle != "none":  # the whole day, shuffled in memory
            table = pa.concat_tables(pq.read_table(p, columns=columns) for p in self.dataset.splits[day].files)
            table = table.take(np.random.default_rng(epoch_seed(config.train.seed, shuffle_pass)).permutation(len(table))).combine_chunks()
            for record_batch in table.to_batches(max_chunksize=config.data.batch_size):
                yield collate(record_batch)
            return
        for path in self.dataset.splits[day].files:
            for record_batch in pq.ParquetFile(path).iter_batches(batch_size=config.data.batch_size, columns=columns):
                yield collate(record_batch)

    @contextmanager
    def latest(self) -> Iterator[str | None]:
        done = sorted(self.checkpoints.glob("pass-*")) if self.checkpoints.exists() else []
        yield str(done[-1]) if done else None

    def save(self, metrics: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
             progress: dict[str, Any], files: dict[str, Any]) -> None:
        directory = self.checkpoints / f"pass-{progress['passes_done']:04d}"
        save_sharded(directory, model, optimizer, progress=progress,
                     rank_state={"torch_rng": torch.get_rng_state().tolist()})
        for name, content in files.items():
            (directory / name).write_text(json.dumps(content, indent=2))


@dataclass
class PassJob:
    """What every worker needs to know about the run."""

    config: JobConfig
    spec: DatasetSpec
    days: tuple[str, ...]
    max_passes: int | None = None


def _global_sum(value: int) -> int:
    total = torch.tensor([value], dtype=torch.int64)
    dist.all_reduce(total)
    return int(total.item())


def pass_loop(job: PassJob, io: PassIO) -> list[dict[str, Any]]:
    """Collective: the pass-by-pass loop of one worker; returns the history of all passes."""
    config, spec, rank = job.config, job.spec, io.rank
    torch.manual_seed(config.train.seed + rank)
    device = torch.device("cpu")
    if config.workers.use_gpu and config.collision:
        raise ConfigError("collision on GPU: TorchRec's sharded managed-collision path is not wired into "
                          "pass-by-pass training yet (see docs/collision.md); run bounded features on CPU")
    if config.workers.use_gpu:
        import ray.train.torch

        device = ray.train.torch.get_device()
    model_spec = bounded_spec(spec, config.collision)
    model, sharded, plan_text = build_sharded_model(config, model_spec, device, io.local_world_size)
    rank0(rank, plan_text)
    optimizer = combined_optimizer(sharded, config.train.optim)
    features = for_keys(config.collision, model.kjt_keys)
    keys = {f.key for f in features}
    tables = [t for t in embedding_tables(model_spec, model.table_sets) if t.feature_names[0] in keys]
    trained: torch.nn.Module = BoundedShardedModel(sharded, features, tables) if features else sharded
    collate = Collator(spec, model.kjt_keys)
    pad = collate.padding_batch()

    history: list[dict[str, Any]] = []
    with io.latest() as directory:
        if directory is not None:
            progress = load_sharded(directory, trained, optimizer)
            history = json.loads((Path(directory) / PASSES_FILE).read_text())
            done = [h["day"] for h in history]
            if list(job.days[:len(done)]) != done:
                raise ConfigError(f"resume: the checkpoint trained days {done}, but the passes directory now "
                                  f"starts with {list(job.days[:len(done)])}")
            torch.set_rng_state(torch.tensor(progress["rank_state"]["torch_rng"], dtype=torch.uint8))
            rank0(rank, f"resumed after pass {len(history)} ({done[-1]})")
    last = min(len(job.days), job.max_passes or len(job.days))
    for index in range(len(history), last):
        day = job.days[index]
        started = time.perf_counter()
        record: dict[str, Any] = {"pass": index + 1, "day": day}
        cells: list[dict[str, Any]] = []
        if index > 0:  # progressive validation: this day is still unseen
            table = gather(predict(trained, io.batches(day, config, collate), pad, device)).metrics(spec)
            record.update({f"next_day_{k}": v for k, v in summary(table).items()})
            cells = [{"pass": index + 1, "day": day, **c} for c in table.to_dict(orient="records")]

        def on_step(stats: EpochStats, day: str = day) -> None:
            if stats.steps % config.train.log_every == 0:
                losses = " ".join(f"{t} {v:.4f}" for t, v in zip(spec.tasks, stats.mean_task_losses()))
                rank0(rank, f"pass {index + 1}/{last} {day} step {stats.steps} | loss {losses}")

        stats = train_epoch(trained, optimizer, io.batches(day, config, collate, shuffle_pass=index), device,
                            config.train.max_steps_per_epoch, on_step)
        if isinstance(trained, BoundedShardedModel):
            trained.flush()
            trained.check_replicas()
            for key, s in trained.stats().items():
                cap = trained.remapper.remapper.features[key].rows
                record.update({f"rows_in_use/{key}": s.rows_in_use, f"rows/{key}": cap, f"evictions/{key}": s.evictions,
                               f"admission_rejections/{key}": s.admission_rejections})
        record.update(train_rows=_global_sum(sum(stats.batch_rows)), train_loss=float(sum(stats.mean_task_losses())),
                      seconds=time.perf_counter() - started)
        history.append({**record, "cells": cells})
        rank0(rank, format_pass_line(record, last))
        io.save(record, trained, optimizer, {"passes_done": index + 1, "day": day}, {PASSES_FILE: history})
    return history


def format_pass_line(record: dict[str, Any], last: int) -> str:
    """One progress line per pass: next-day quality, then each bounded table's counters."""
    auc = record.get("next_day_mean_auc", float("nan"))
    quality = ("not scored (no model yet)" if math.isnan(auc) else
               f"next-day mean AUC {auc:.4f} GAUC {record['next_day_mean_gauc']:.4f}")
    keys = [k.split("/", 1)[1] for k in record if k.startswith("rows_in_use/")]
    tables = "; ".join(f"{k} rows {record[f'rows_in_use/{k}']}/{record[f'rows/{k}'] - 1} "
                       f"evictions {record[f'evictions/{k}']} rejections {record[f'admission_rejections/{k}']}"
                       for k in keys)
    return f"pass {record['pass']}/{last} {record['day']}: {quality} | {tables or 'no bounded tables'}"


def pass_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point of pass-by-pass training."""
    worker = WorkerContext.from_loop_config(loop_config)
    job = PassJob(worker.config, worker.spec, tuple(loop_config["days"]), loop_config.get("max_passes"))
    pass_loop(job, RayIO())


# ---------------------------------------------------------------- driver

def run_passes(config: JobConfig, root: str | Path, run_name: str | None = None,
               max_passes: int | None = None) -> Path:
    """Trains pass by pass on Ray over the day partitions of `root`; returns the run directory.

    With the `run_name` of an earlier run, resumes after its last checkpointed pass.
    """
    from ray_jobs.data.ingest import ordered_ingest
    from ray_jobs.training.runtime import init_ray, make_trainer

    if config.workers.use_gpu and config.collision:  # fail before starting Ray
        raise ConfigError("collision on GPU is not wired into pass-by-pass training yet (docs/collision.md)")
    config, root = local_only(config, "pass-by-pass training"), local_path(root, "--passes", "pass-by-pass training")
    dataset = load_passes(root, config)
    days = tuple(dataset.splits)
    init_ray(config)
    run_name = run_name or f"{config.name}-passes-{time.strftime('%Y%m%d-%H%M%S')}"
    trainer = make_trainer(config, dataset, pass_loop_per_worker, run_name,
                           extra={"days": list(days), "max_passes": max_passes}, splits=days,
                           dataset_config=ordered_ingest())
    result = trainer.fit()
    if result.error:
        raise result.error
    with result.checkpoint.as_directory() as directory:
        history = json.loads((Path(directory) / PASSES_FILE).read_text())
    sizes = {int(m["pass"]): _state_bytes(c.path) for c, m in result.best_checkpoints}
    run_dir = Path(config.runs_dir).resolve() / run_name
    write_report(run_dir, history, sizes)
    (run_dir / JOB_FILE).write_text(dump_config(config))
    print(format_passes(history, sizes))
    logger.info("run directory: %s", run_dir)
    return run_dir


def run_local(config: JobConfig, root: str | Path, out_dir: str | Path, max_passes: int | None = None) -> list[dict]:
    """The same pass loop in this process, without Ray (one rank): for policy studies and tests.

    Needs a process group of world size 1 if one is initialized; otherwise makes one.
    Resumes from `out_dir/checkpoints` like a Ray run resumes from its run directory.
    """
    dataset = load_passes(root, config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("gloo", store=dist.FileStore(str(out / ".pg_store"), 1), rank=0, world_size=1)
    if dist.get_world_size() != 1:
        raise ValueError("run_local runs one rank; use run_passes for several workers")
    try:
        io = LocalIO(dataset, out)
        history = pass_loop(PassJob(config, dataset.spec, tuple(dataset.splits), max_passes), io)
    finally:
        if owned:
            dist.destroy_process_group()
    sizes = {int(p.name.split("-")[1]): _state_bytes(p) for p in sorted(io.checkpoints.glob("pass-*"))}
    write_report(out, history, sizes)
    return history


def _state_bytes(path: str | Path) -> int:
    """Bytes of a checkpoint without its pass history (which grows by one record a pass)."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file() and p.name != PASSES_FILE)


