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
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import ray.train
import torch
import torch.distributed as dist
from torchrec.distributed.model_parallel import DistributedModelParallel

from modules.model import SeesawModel, embedding_tables
from modules.spec import DatasetSpec
from modules.strict import from_dict, to_dict
from ray_jobs.collate import Collator
from ray_jobs.config import JobConfig
from ray_jobs.evaluation import Predictions, gather, predict
from ray_jobs.lockstep import lockstep
from ray_jobs.metrics import summary
from sharding.checkpoint import load_sharded, save_sharded
from sharding.optim import combined_optimizer
from sharding.parallel import shard_model
from sharding.planner import make_topology, plan_sharding
from sharding.preview import format_preview, summarize_plan

METRICS_FILE = "metrics.json"


def _log(rank: int, message: str) -> None:
    if rank == 0:
        print(f"[seesaw] {message}", flush=True)


def arrow_batches(split: str, config: JobConfig) -> Iterator[pa.Table]:
    shard = ray.train.get_dataset_shard(split)
    return shard.iter_batches(batch_size=config.data.batch_size, batch_format="pyarrow",
                              prefetch_batches=config.data.prefetch_batches)


def _flat_metrics(prefix: str, predictions: Predictions, spec: DatasetSpec) -> tuple[dict[str, float], list[dict]]:
    table = predictions.metrics(spec)
    flat = {f"{prefix}_{k}": v for k, v in summary(table).items()}
    return flat, table.to_dict(orient="records")


def build_sharded_model(config: JobConfig, spec: DatasetSpec,
                        device: torch.device) -> tuple[SeesawModel, DistributedModelParallel, str]:
    """SeesawModel planned for the current process group and wrapped in DMP.

    Returns (the unwrapped model, the DMP-wrapped one, the plan as a printable table).
    """
    model = SeesawModel(spec, config.model.arch, config.model.params, device="meta")
    tables = embedding_tables(spec, model.table_sets)
    world_size = dist.get_world_size()
    local_world_size = ray.train.get_context().get_local_world_size()
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

    start_epoch = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            progress = load_sharded(directory, sharded, optimizer)
        start_epoch = progress.get("epoch", -1) + 1
        _log(rank, f"resumed from checkpoint after epoch {progress.get('epoch')} ({checkpoint.path})")

    train_rows = loop_config.get("train_rows", 0)
    steps_hint = max(1, train_rows // (config.data.batch_size * world_size))
    for epoch in range(start_epoch, config.train.epochs):
        sharded.train()
        step, samples, wait = 0, 0, 0.0
        loss_sum = torch.zeros(spec.num_tasks)
        t_start = t_epoch = t_wait = time.perf_counter()
        t_first_batch = 0.0
        for table in lockstep(arrow_batches("train", config)):
            batch = collate(table).to(device)
            if step == 0:  # throughput counts from the first batch; start-up is reported apart
                t_first_batch = time.perf_counter() - t_start
                t_epoch = t_wait = time.perf_counter()
            wait += time.perf_counter() - t_wait
            loss, out = sharded(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            samples += batch.size
            loss_sum += out.task_losses.cpu()
            if step % config.train.log_every == 0:
                elapsed = time.perf_counter() - t_epoch
                losses = " ".join(f"{t} {v:.4f}" for t, v in zip(spec.tasks, (loss_sum / step).tolist()))
                _log(rank, f"epoch {epoch + 1}/{config.train.epochs} step {step}/~{steps_hint} | "
                           f"{samples * world_size / elapsed:,.0f} samples/s | input wait {wait / elapsed:.0%} | loss {losses}")
            if config.train.max_steps_per_epoch and step >= config.train.max_steps_per_epoch:
                break
            t_wait = time.perf_counter()
        elapsed = time.perf_counter() - t_epoch

        valid = gather(predict(sharded, (collate(t) for t in arrow_batches("valid", config)), pad, device))
        metrics, _ = _flat_metrics("val", valid, spec)
        metrics.update(epoch=epoch + 1, train_steps=step, train_samples_per_s=samples * world_size / max(elapsed, 1e-9),
                       train_loss=float((loss_sum / max(step, 1)).sum()), time_to_first_batch_s=t_first_batch,
                       input_wait_fraction=wait / max(elapsed, 1e-9))
        last = epoch == config.train.epochs - 1
        files: dict[str, Any] = {}
        if last:
            test = gather(predict(sharded, (collate(t) for t in arrow_batches("test", config)), pad, device))
            test_metrics, cells = _flat_metrics("test", test, spec)
            metrics.update(test_metrics)
            files[METRICS_FILE] = {"summary": metrics, "cells": cells, "job": to_dict(config), "spec": loop_config["spec"]}
        _log(rank, "epoch {epoch}: val mean AUC {val_mean_auc:.4f} mean GAUC {val_mean_gauc:.4f} ({train_samples_per_s:,.0f} samples/s)".format(**metrics))
        _report(metrics, sharded, optimizer, epoch, rank, files)


def _report(metrics: dict[str, Any], model, optimizer, epoch: int, rank: int, files: dict[str, Any]) -> None:
    """Writes this rank's checkpoint shards (plus rank 0's JSON files) and reports to Ray Train."""
    with tempfile.TemporaryDirectory() as directory:
        save_sharded(directory, model, optimizer, progress={"epoch": epoch})
        if rank == 0:
            for name, content in files.items():
                (Path(directory) / name).write_text(json.dumps(content, indent=2, default=_json_default))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")
