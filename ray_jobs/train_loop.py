"""The per-worker training loop, readable top to bottom.

Each Ray Train worker: builds the model with its embedding tables on the meta device, plans
the sharding collectively for the worker group, wraps it in DistributedModelParallel (fused
row-wise Adagrad on the tables, Adam on the dense part), streams its Ray Data shard through
the vectorised collate in lockstep with the other workers, evaluates on the validation split
each epoch (predictions gathered from all workers), and reports metrics plus a sharded DCP
checkpoint to Ray Train. After the last epoch it scores the test split the same way.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import ray.train
import torch
import torch.distributed as dist
from torchrec.distributed.model_parallel import DistributedModelParallel
from torchrec.distributed.train_pipeline import TrainPipelineSparseDist

from modules.batch import Batch
from modules.model import SeesawModel, StepOutput, embedding_tables
from modules.spec import DatasetSpec
from modules.strict import from_dict, to_dict
from ray_jobs.collate import Collator, FetchCollator
from ray_jobs.config import JobConfig
from ray_jobs.evaluation import PREDICTIONS_FILE, Predictions, gather, predict
from ray_jobs.fault_injection import SelfKill
from ray_jobs.lockstep import lockstep
from ray_jobs.metrics import summary
from sharding.checkpoint import load_sharded, save_sharded
from sharding.optim import combined_optimizer
from sharding.parallel import shard_model
from sharding.planner import make_topology, plan_sharding
from sharding.preview import format_preview, summarize_plan

METRICS_FILE = "metrics.json"
RESULT_FILE = "result.json"


def _log(rank: int, message: str) -> None:
    """Rank-0 progress line. Written to the real stdout: Train v2's print patch would tee a
    plain print() to both the console and its logger, showing every line twice."""
    if rank == 0:
        print(f"[seesaw] {message}", file=sys.__stdout__, flush=True)


def shard_batches(split: str, config: JobConfig, collate: Collator) -> Iterator[Batch]:
    """This worker's shard of `split` as collated Batches of `batch_size` rows, fetched from Ray
    Data `batches_per_fetch` at a time (collate runs in Ray Data's prefetch threads)."""
    shard = ray.train.get_dataset_shard(split)
    rows = config.data.batch_size
    fetches = shard.iter_torch_batches(batch_size=rows * config.data.batches_per_fetch,
                                       collate_fn=FetchCollator(collate, rows),
                                       prefetch_batches=config.data.prefetch_batches)
    for batches in fetches:
        yield from batches


@dataclass
class EpochStats:
    """Timing of one worker's epoch. Compute time runs from a batch in hand to its step done;
    input wait is the time spent waiting for the input pipeline's next batch (after the first);
    sync wait is the time spent in lockstep's per-step collective, i.e. waiting for the slowest
    worker (0 for a single worker)."""

    steps: int = 0
    first_batch_s: float = 0.0
    wait_s: list[float] = field(default_factory=list)  # per step; 0 for the first
    sync_s: list[float] = field(default_factory=list)  # per step; 0 for the first
    step_s: list[float] = field(default_factory=list)
    batch_rows: list[int] = field(default_factory=list)
    loss_sum: torch.Tensor | None = None
    skipped: int = 0  # batches consumed untrained when resuming mid-epoch
    telemetry_sum: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. SMES expert load

    @property
    def position(self) -> int:
        """Batches of this epoch done, counting those trained before a resume."""
        return self.skipped + self.steps

    def mean_task_losses(self) -> list[float]:
        return (self.loss_sum / max(self.steps, 1)).tolist() if self.loss_sum is not None else []

    def metrics(self, world_size: int, skip: int = 0) -> dict[str, float]:
        """Throughput and step-time statistics, leaving out the first `skip` (warm-up) steps."""
        wait, step = np.asarray(self.wait_s[skip:]), np.asarray(self.step_s[skip:])
        sync = np.asarray(self.sync_s[skip:])
        busy = max(float(wait.sum() + sync.sum() + step.sum()), 1e-9)
        samples = sum(self.batch_rows[skip:])
        step = step if step.size else np.zeros(1)
        return {
            "train_steps": self.steps,
            "train_samples_per_s": samples * world_size / busy,
            "train_samples_per_s_per_worker": samples / busy,
            "step_ms_p50": float(np.percentile(step, 50) * 1e3),
            "step_ms_p90": float(np.percentile(step, 90) * 1e3),
            "input_wait_fraction": float(wait.sum()) / busy,
            "sync_wait_fraction": float(sync.sum()) / busy,
            "time_to_first_batch_s": self.first_batch_s,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "train_loss": float(sum(self.mean_task_losses())),
            **{f"telemetry/{k}": (v / max(self.steps, 1)).tolist() for k, v in self.telemetry_sum.items()},
        }


class _TimedIterator:
    """Wraps an iterator and accumulates the seconds spent waiting in next()."""

    def __init__(self, iterable: Iterable[Batch]) -> None:
        self._it = iter(iterable)
        self.waited = 0.0

    def __iter__(self) -> "_TimedIterator":
        return self

    def __next__(self) -> Batch:
        start = time.perf_counter()
        try:
            return next(self._it)
        finally:
            self.waited += time.perf_counter() - start


def _steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Iterator[Batch],
           device: torch.device) -> Iterator[StepOutput]:
    """Train steps over `batches`, yielding each step's output.

    On CUDA, TorchRec's TrainPipelineSparseDist overlaps the host-to-device copy and the
    embedding all-to-all of the next batches with this batch's dense compute. On CPU there is
    nothing to overlap with, so a plain step runs.
    """
    if device.type == "cuda":
        pipeline = TrainPipelineSparseDist(model, optimizer, device)
        while True:
            try:
                yield pipeline.progress(batches)
            except StopIteration:
                return
    for batch in batches:
        loss, out = model(batch.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        yield out


def train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable[Batch],
                device: torch.device, max_steps: int | None = None,
                on_step: Callable[[EpochStats], None] | None = None, skip: int = 0) -> EpochStats:
    """One pass over `batches` in lockstep with the other workers; returns its timing.

    `skip` batches are consumed untrained first (a resumed epoch's already-trained part);
    `max_steps` counts them too.
    """
    model.train()
    stats = EpochStats()
    fed = _TimedIterator(batches)  # time in the input pipeline
    synced = _TimedIterator(lockstep(fed))  # that plus time in lockstep's collective
    for _ in zip(range(skip), synced):
        pass
    stats.skipped = skip
    t_start = t_last = time.perf_counter()
    for out in _steps(model, optimizer, synced, device):
        now = time.perf_counter()
        wait, sync = fed.waited, synced.waited - fed.waited
        fed.waited = synced.waited = 0.0
        if stats.steps == 0:
            stats.first_batch_s, wait, sync = now - t_start, 0.0, 0.0
            stats.step_s.append(0.0)  # the first step's compute is inside the first-batch time
        else:
            stats.step_s.append(now - t_last - wait - sync)
        stats.wait_s.append(wait)
        stats.sync_s.append(sync)
        t_last = now
        losses = out.task_losses.cpu()
        stats.loss_sum = losses if stats.loss_sum is None else stats.loss_sum + losses
        for name, value in out.telemetry.items():
            value = value.float().cpu()
            stats.telemetry_sum[name] = stats.telemetry_sum[name] + value if name in stats.telemetry_sum else value
        stats.steps += 1
        stats.batch_rows.append(int(out.logits.shape[0]))
        if on_step is not None:
            on_step(stats)
        if max_steps and skip + stats.steps >= max_steps:
            break
    return stats


def _flat_metrics(prefix: str, predictions: Predictions, spec: DatasetSpec) -> tuple[dict[str, float], list[dict]]:
    table = predictions.metrics(spec)
    flat = {f"{prefix}_{k}": v for k, v in summary(table).items()}
    return flat, table.to_dict(orient="records")


def build_sharded_model(config: JobConfig, spec: DatasetSpec, device: torch.device,
                        local_world_size: int | None = None) -> tuple[SeesawModel, DistributedModelParallel, str]:
    """SeesawModel planned for the current process group and wrapped in DMP.

    `local_world_size` (ranks per node) defaults to the Ray Train worker group's.
    Returns (the unwrapped model, the DMP-wrapped one, the plan as a printable table).
    """
    model = SeesawModel(spec, config.model.arch, config.model.params, device="meta")
    tables = embedding_tables(spec, model.table_sets)
    world_size = dist.get_world_size()
    local_world_size = local_world_size or ray.train.get_context().get_local_world_size()
    topology = make_topology(world_size, device.type, local_world_size=local_world_size)
    plan = plan_sharding(model, tables, topology, config.data.batch_size, config.sharding, pg=dist.GroupMember.WORLD)
    storage = topology.devices[0].storage
    capacity = storage.hbm if device.type == "cuda" else storage.ddr
    plan_text = format_preview(summarize_plan(plan, tables, device.type, world_size, capacity))
    return model, shard_model(model, plan, device, config.train.optim), plan_text


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point; `loop_config` holds the JobConfig and spec as plain dicts."""
    config = from_dict(JobConfig, loop_config["job"])
    spec = DatasetSpec.from_json_dict(loop_config["spec"])
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    torch.manual_seed(config.train.seed + rank)
    device = ray.train.torch.get_device() if config.workers.use_gpu else torch.device("cpu")

    model, sharded, plan_text = build_sharded_model(config, spec, device)
    _log(rank, plan_text)
    optimizer = combined_optimizer(sharded, config.train.optim)
    collate = Collator(spec, model.kjt_keys)
    pad = collate.padding_batch()

    start_epoch, skip = 0, 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            progress = load_sharded(directory, sharded, optimizer)
        if progress.get("epoch_done", True):
            start_epoch = progress.get("epoch", -1) + 1
        else:
            start_epoch, skip = progress["epoch"], progress["step"]
        if "rank_state" in progress:
            torch.set_rng_state(torch.tensor(progress["rank_state"]["torch_rng"], dtype=torch.uint8))
        _log(rank, f"resumed from checkpoint at epoch {progress.get('epoch', -1) + 1} step {progress.get('step')} "
                   f"({checkpoint.path})")

    injected_fault = SelfKill(loop_config.get("injected_fault"), rank, resumed=checkpoint is not None)
    train_rows = loop_config.get("train_rows", 0)
    steps_hint = max(1, train_rows // (config.data.batch_size * world_size))
    for epoch in range(start_epoch, config.train.epochs):

        def on_step(stats: EpochStats) -> None:
            every = config.train.checkpoint_every_steps
            if every and stats.position % every == 0:
                _checkpoint({"epoch": epoch + 1, "step": stats.position, **stats.metrics(world_size)},
                            sharded, optimizer, {"epoch": epoch, "step": stats.position, "epoch_done": False}, rank, {})
            if rank == 0 and stats.steps % config.train.log_every == 0:
                m = stats.metrics(world_size)
                losses = " ".join(f"{t} {v:.4f}" for t, v in zip(spec.tasks, stats.mean_task_losses()))
                _log(rank, f"epoch {epoch + 1}/{config.train.epochs} step {stats.steps}/~{steps_hint} | "
                           f"{m['train_samples_per_s']:,.0f} samples/s | input wait {m['input_wait_fraction']:.0%} "
                           f"sync wait {m['sync_wait_fraction']:.0%} | "
                           f"loss {losses}")
            injected_fault.after_step()  # chaos testing (ray_jobs/fault_injection.py); a no-op unless set

        stats = train_epoch(sharded, optimizer, shard_batches("train", config, collate), device,
                            config.train.max_steps_per_epoch, on_step, skip=skip if epoch == start_epoch else 0)
        valid = gather(predict(sharded, shard_batches("valid", config, collate), pad, device))
        metrics, _ = _flat_metrics("val", valid, spec)
        metrics.update(epoch=epoch + 1, **stats.metrics(world_size))
        last = epoch == config.train.epochs - 1
        files: dict[str, Any] = {}
        if last:
            test = gather(predict(sharded, shard_batches("test", config, collate), pad, device))
            test_metrics, cells = _flat_metrics("test", test, spec)
            metrics.update(test_metrics)
            files[METRICS_FILE] = {"summary": metrics, "cells": cells, "job": to_dict(config), "spec": loop_config["spec"],
                                   "worker_nodes": _worker_nodes()}
            files[PREDICTIONS_FILE] = lambda path, test=test: test.save(path, spec)
        _log(rank, "epoch {epoch}: val mean AUC {val_mean_auc:.4f} mean GAUC {val_mean_gauc:.4f} ({train_samples_per_s:,.0f} samples/s)".format(**metrics))
        _checkpoint(metrics, sharded, optimizer, {"epoch": epoch, "step": stats.position, "epoch_done": True},
                    rank, files)


def _checkpoint(metrics: dict[str, Any], model, optimizer, progress: dict[str, Any], rank: int,
                files: dict[str, Any]) -> None:
    """Collective: writes this rank's checkpoint shards, its RNG state and rank 0's `files`
    (JSON content, or a callable that writes the file at the path it is given), and reports them with `metrics` to Ray Train (which keeps the latest K)."""
    with tempfile.TemporaryDirectory() as directory:
        save_sharded(directory, model, optimizer, progress=progress,
                     rank_state={"torch_rng": torch.get_rng_state().tolist()})
        if rank == 0:
            for name, content in files.items():
                if callable(content):  # writes its own file (e.g. Parquet predictions)
                    content(Path(directory) / name)
                else:
                    (Path(directory) / name).write_text(json.dumps(content, indent=2, default=_json_default))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))


def _worker_nodes() -> list[str]:
    """Ray node id of every rank, in rank order (collective)."""
    nodes: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(nodes, ray.get_runtime_context().get_node_id())
    return nodes


def report_result(metrics: dict[str, Any], payload: Any) -> None:
    """Reports `metrics`, with rank 0's `payload` as JSON in a small checkpoint.

    Train v2 keeps a run's results with its checkpoints, so a JSON payload (a metrics table,
    benchmark statistics) travels back to the driver this way, on one node or many.
    """
    if dist.get_rank() != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / RESULT_FILE).write_text(json.dumps(payload, default=_json_default))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))


def read_result(result: ray.train.Result) -> Any:
    """Driver side of `report_result`: the payload of the run's last report."""
    if result.error:
        raise result.error
    with result.checkpoint.as_directory() as directory:
        return json.loads((Path(directory) / RESULT_FILE).read_text())


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")
