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
from pathlib import Path
from typing import Any

import ray.train
import torch

from modules.spec import DatasetSpec
from modules.strict import to_dict
from ray_jobs.core.log import rank0
from ray_jobs.core.run_dir import METRICS_FILE, PREDICTIONS_FILE
from ray_jobs.data.collate import Collator
from ray_jobs.evaluation.metrics import summary
from ray_jobs.evaluation.predictions import Predictions, gather, predict
from ray_jobs.training.epoch import EpochStats, train_epoch
from ray_jobs.training.fault_injection import SelfKill
from ray_jobs.training.worker import WorkerContext, build_sharded_model, json_default, shard_batches, worker_nodes
from sharding.checkpoint import load_sharded, save_sharded
from sharding.optim import combined_optimizer


def _flat_metrics(prefix: str, predictions: Predictions, spec: DatasetSpec) -> tuple[dict[str, float], list[dict]]:
    table = predictions.metrics(spec)
    flat = {f"{prefix}_{k}": v for k, v in summary(table).items()}
    return flat, table.to_dict(orient="records")


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point; `loop_config` holds the JobConfig and spec as plain dicts."""
    worker = WorkerContext.from_loop_config(loop_config)
    config, spec, rank, world_size, device = worker.config, worker.spec, worker.rank, worker.world_size, worker.device
    torch.manual_seed(config.train.seed + rank)

    model, sharded, plan_text = build_sharded_model(config, spec, device)
    rank0(rank, plan_text)
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
        rank0(rank, f"resumed from checkpoint at epoch {progress.get('epoch', -1) + 1} step {progress.get('step')} "
                   f"({checkpoint.path})")

    injected_fault = SelfKill(loop_config.get("injected_fault"), rank, resumed=checkpoint is not None)
    train_rows = loop_config.get("train_rows", 0)
    steps_hint = max(1, train_rows // (config.data.batch_size * world_size))
    for epoch in range(start_epoch, config.train.epochs):

        def on_step(stats: EpochStats) -> None:
            every = config.train.checkpoint_every_steps
            if every and stats.position % every == 0:
                save_checkpoint({"epoch": epoch + 1, "step": stats.position, **stats.metrics(world_size)},
                            sharded, optimizer, {"epoch": epoch, "step": stats.position, "epoch_done": False}, rank, {})
            if rank == 0 and stats.steps % config.train.log_every == 0:
                m = stats.metrics(world_size)
                losses = " ".join(f"{t} {v:.4f}" for t, v in zip(spec.tasks, stats.mean_task_losses()))
                rank0(rank, f"epoch {epoch + 1}/{config.train.epochs} step {stats.steps}/~{steps_hint} | "
                           f"{m['train_samples_per_s']:,.0f} samples/s | input wait {m['input_wait_fraction']:.0%} "
                           f"sync wait {m['sync_wait_fraction']:.0%} | "
                           f"loss {losses}")
            injected_fault.after_step()  # chaos testing (ray_jobs/fault_injection.py); a no-op unless set

        stats = train_epoch(sharded, optimizer, shard_batches("train", config, collate), device,
                            config.train.max_steps_per_epoch, on_step, skip=skip if epoch == start_epoch else 0,
                            autocast=config.train.dense_autocast)
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
                                   "worker_nodes": worker_nodes()}
            files[PREDICTIONS_FILE] = lambda path, test=test: test.save(path, spec)
        rank0(rank, "epoch {epoch}: val mean AUC {val_mean_auc:.4f} mean GAUC {val_mean_gauc:.4f} ({train_samples_per_s:,.0f} samples/s)".format(**metrics))
        save_checkpoint(metrics, sharded, optimizer, {"epoch": epoch, "step": stats.position, "epoch_done": True},
                    rank, files)


def save_checkpoint(metrics: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    progress: dict[str, Any], rank: int, files: dict[str, Any]) -> None:
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
                    (Path(directory) / name).write_text(json.dumps(content, indent=2, default=json_default))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))


