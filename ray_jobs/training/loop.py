"""The per-worker training loop, readable top to bottom.

Each Ray Train worker: builds the model with its embedding tables on the meta device, plans
the sharding collectively for the worker group, wraps it in DistributedModelParallel (fused
row-wise Adagrad on the tables, Adam on the dense part), streams its Ray Data shard through
the vectorised collate in lockstep with the other workers, evaluates on the validation split
each epoch (predictions gathered from all workers), and reports metrics plus a sharded DCP
checkpoint to Ray Train. After the last epoch (or early stopping) it scores the test split the
same way with the best epoch's model (`train.select_metric`). Rank 0 keeps per-task NE and
calibration over the last `train.log_every` batches (`window_metrics`; on its bar, in each epoch's
line and report) and writes the training and validation curves to `<run dir>/tensorboard/`
(`curves`).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import ray.train
import torch

from modules.spec import DatasetSpec
from modules.strict import to_dict
from ray_jobs.core.config import JobConfig
from ray_jobs.core.log import rank0
from ray_jobs.core.tables import cell
from ray_jobs.core.timeline import Stopwatch, Timeline, process_started
from ray_jobs.core.run_dir import METRICS_FILE, PREDICTIONS_FILE
from ray_jobs.data.collate import Collator
from ray_jobs.data.ingest import local_shuffle, train_split
from ray_jobs.training.curves import Curves
from ray_jobs.evaluation.metrics import summary
from ray_jobs.evaluation.predictions import Predictions, gather, predict
from ray_jobs.training.elastic import DRIVER_ID, WORLD_SIZE, mapped_skip, resume_record
from ray_jobs.training.epoch import EpochStats, EpochTime, train_epoch
from ray_jobs.training.fault_injection import SelfKill
from ray_jobs.training.progress import EpochProgress
from ray_jobs.training.selection import SELECT_SCORE, UNSCORED, better, select_metric_name, select_score
from ray_jobs.training.window_metrics import WindowMetrics
from ray_jobs.training.worker import (WorkerContext, build_sharded_model, json_default, shard_batches, warm_up_shards,
                                     worker_nodes)
from sharding.checkpoint import load_sharded, save_sharded
from sharding.optim import combined_optimizer


def _flat_metrics(prefix: str, predictions: Predictions, spec: DatasetSpec) -> tuple[dict[str, float], list[dict]]:
    table = predictions.metrics(spec)
    flat = {f"{prefix}_{k}": v for k, v in summary(table).items()}
    return flat, table.to_dict(orient="records")


def _best_checkpoint(epoch: int) -> Any:
    """The reported end-of-epoch checkpoint of `epoch` (1-based), if Ray Train still keeps it
    (it keeps the best `keep_checkpoints` by SELECT_SCORE when the trainer is told to)."""
    for reported in ray.train.get_all_reported_checkpoints():
        if reported.metrics.get("epoch_end") and reported.metrics.get("epoch") == epoch:
            return reported  # a ReportedCheckpoint: .checkpoint, .metrics
    return None


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point; `loop_config` holds the JobConfig and spec as plain dicts.

    Every epoch trains on that epoch's shuffled rows, scores the validation split and reports
    a checkpoint; the best epoch by `train.select_metric` so far is carried in the checkpoint's
    progress. After the last epoch (or `train.patience` epochs without a better one) the best
    epoch's weights are loaded back and score the test split; a last small report carries
    metrics.json (with `best_epoch` and `best_checkpoint`) and the test predictions.
    """
    timeline = Timeline(worker_process_started=process_started())
    timeline.mark("worker_loop_started")
    worker = WorkerContext.from_loop_config(loop_config)
    config, spec, rank, world_size, device = worker.config, worker.spec, worker.rank, worker.world_size, worker.device
    torch.manual_seed(config.train.seed + rank)

    model, sharded, plan_text = build_sharded_model(config, spec, device)
    timeline.mark("model_sharded")
    rank0(rank, plan_text)
    optimizer = combined_optimizer(sharded, config.train.optim)
    collate = Collator(spec, model.kjt_keys)
    pad = collate.padding_batch()
    select = select_metric_name(config, spec)

    start_epoch, skip, stopped, global_step = 0, 0, False, 0
    best: dict[str, Any] | None = None  # {"epoch": 1-based, "score": float}
    resumes: list[dict[str, Any]] = []  # where each restart (worker or driver) picked the run up
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            progress = load_sharded(directory, sharded, optimizer)
        resumed_at = resume_record(progress, world_size, loop_config.get(DRIVER_ID))
        if progress.get("epoch_done", True):
            start_epoch = progress.get("epoch", -1) + 1
        else:  # the epoch's position, mapped to this world size (exact on the same one)
            start_epoch = progress["epoch"]
            skip = mapped_skip(progress["step"], resumed_at["world_size_before"], world_size)
        best, stopped = progress.get("best"), progress.get("stopped", False)
        global_step = progress.get("global_step", 0)  # batches trained since the run began (the curves' axis)
        resumes = [*progress.get("resumes", []), resumed_at]
        if "rank_state" in progress:
            torch.set_rng_state(torch.tensor(progress["rank_state"]["torch_rng"], dtype=torch.uint8))
        rank0(rank, f"resumed from checkpoint at epoch {resumed_at['epoch']} step {resumed_at['step']} "
                   f"({checkpoint.path}): {resumed_at['reason']}; world size {resumed_at['world_size_before']} "
                   f"-> {world_size}" + (f", the epoch resumes at step {skip} of {world_size} worker(s)"
                                         if skip != (resumed_at["step"] or 0) else ""))
    elastic = {WORLD_SIZE: world_size, DRIVER_ID: loop_config.get(DRIVER_ID)}  # every checkpoint's progress
    model_epoch = start_epoch  # the epoch (1-based) whose end-of-epoch weights the model holds (0: none)

    injected_fault = SelfKill(loop_config.get("injected_fault"), rank, resumed=checkpoint is not None)
    train_rows = loop_config.get("train_rows", 0)
    steps_hint = max(1, train_rows // (config.data.batch_size * world_size))
    metrics: dict[str, Any] = {}
    window = WindowMetrics(spec.tasks, config.train.log_every) if rank == 0 else None  # rank 0's batches
    if window is not None and checkpoint is not None:
        window.load(progress.get("window"))  # the window of the checkpointed step: resumed curves are exact
    curves = Curves(worker.run_dir, rank, purge_step=global_step)
    epoch_times: list[dict[str, float]] = []  # this worker group's epochs (`EpochTime`), for metrics.json
    for epoch in range(start_epoch, config.train.epochs):
        if stopped:
            break
        epoch_started = time.perf_counter()

        progress = EpochProgress(rank, epoch, config.train.epochs, min(steps_hint, config.train.max_steps_per_epoch or steps_hint),
                                 spec.tasks, world_size, config.train.log_every, window)
        step0 = global_step - (skip if epoch == start_epoch else 0)  # the run's step before this epoch's first batch

        def on_step(stats: EpochStats) -> None:
            every = config.train.checkpoint_every_steps
            if every and stats.position % every == 0:
                save_checkpoint({"epoch": epoch + 1, "step": stats.position, SELECT_SCORE: UNSCORED,
                                 **stats.metrics(world_size)}, sharded, optimizer,
                                {"epoch": epoch, "step": stats.position, "epoch_done": False, "best": best,
                                 "resumes": resumes, **elastic, "global_step": step0 + stats.position,
                                 "window": window.state() if window is not None else None}, rank, {})
            progress.step(stats)  # rank 0's bar; the full line every log_every steps goes to its log file
            if window is not None and stats.position % config.train.log_every == 0:
                curves.train(step0 + stats.position, window.compute(), spec.tasks,
                             stats.metrics(world_size)["train_samples_per_s"])
            injected_fault.after_step()  # chaos testing (ray_jobs/fault_injection.py); a no-op unless set

        split = train_split(config, epoch)
        upcoming = train_split(config, epoch + 1) if epoch + 1 < config.train.epochs else "test"
        warm_up_shards([split, *(["valid"] if epoch == start_epoch else []), upcoming])  # upcoming's starts meanwhile
        batches = shard_batches(split, config, collate, local_shuffle(config, train_rows, epoch, rank))
        stats = train_epoch(sharded, optimizer, batches, device, config.train.max_steps_per_epoch, on_step,
                            skip=skip if epoch == start_epoch else 0, autocast=config.train.dense_autocast,
                            window=window)
        progress.close(stats)
        global_step = step0 + stats.position
        model_epoch = epoch + 1
        eval_started, eval_forward = time.perf_counter(), Stopwatch()
        valid = gather(predict(sharded, shard_batches("valid", config, collate), pad, device, eval_forward))
        eval_total = time.perf_counter() - eval_started
        metrics, _ = _flat_metrics("val", valid, spec)
        metrics.update(epoch=epoch + 1, epoch_end=True, **stats.metrics(world_size))
        if window is not None:  # rank 0's: Ray Train keeps rank 0's report
            metrics.update(window.as_metrics())
        score = select_score(metrics, select)
        if better(score, best):
            best = {"epoch": epoch + 1, "score": score}
        stopped = config.train.patience is not None and epoch + 1 - best["epoch"] >= config.train.patience
        metrics.update({SELECT_SCORE: UNSCORED if math.isnan(score) else score, "best_epoch": best["epoch"]})
        rank0(rank, "epoch %d: val mean AUC %s mean GAUC %s (%s samples/s) | %s %s, best epoch %d%s", epoch + 1,
              cell(metrics["val_mean_auc"]), cell(metrics["val_mean_gauc"]), f"{metrics['train_samples_per_s']:,.0f}",
              select, cell(metrics[select]), best["epoch"], f" | train {window.format()}" if window and window.steps else "")
        if window is not None and stats.position % config.train.log_every:  # the epoch's last point, unless on_step wrote it
            curves.train(global_step, window.compute(), spec.tasks, metrics["train_samples_per_s"])
        curves.validation(global_step, epoch + 1, metrics)
        if stopped and epoch + 1 < config.train.epochs:
            rank0(rank, f"early stop: {config.train.patience} epoch(s) without a better {select} "
                        f"(best epoch {best['epoch']})")
        checkpoint_started = time.perf_counter()
        save_checkpoint(metrics, sharded, optimizer,
                        {"epoch": epoch, "step": stats.position, "epoch_done": True, "best": best, "stopped": stopped,
                         "resumes": resumes, **elastic, "global_step": global_step,
                         "window": window.state() if window is not None else None}, rank, {})
        now = time.perf_counter()
        epoch_times.append(EpochTime.of(epoch + 1, now - epoch_started, stats, eval_forward.seconds, eval_total,
                                        now - checkpoint_started).as_dict())
        if "first_epoch_done" not in timeline.moments:
            timeline.mark("first_epoch_done")
    curves.close()
    timeline.mark("training_done")
    _score_best_epoch(loop_config, worker, sharded, collate, best, model_epoch, select, resumes, timeline, epoch_times)


def _score_best_epoch(loop_config: dict[str, Any], worker: WorkerContext, sharded: torch.nn.Module,
                      collate: Collator, best: dict[str, Any] | None, model_epoch: int, select: str,
                      resumes: list[dict[str, Any]], timeline: Timeline, epoch_times: list[dict[str, float]]) -> None:
    """Collective: loads the best epoch's weights (unless the model holds them), scores the test
    split and reports metrics.json + the test predictions in a last, model-less checkpoint.

    metrics.json's `resumes` lists each restart the run survived (a worker lost, a driver
    restarted), with the checkpoint position it resumed from (1-based epoch, step within it
    and whether that epoch had ended), the world size before and after, the time and the
    reason (`training.elastic.resume_record`); [] for an uninterrupted run. `timeline`: rank 0's
    moments (`core.timeline`, wall-clock), which the driver turns into metrics.json's `timeline`;
    `epochs`: where each epoch's wall time went on rank 0 (`training.epoch.EpochTime`), the
    epochs this worker group trained (after a restart, those since it)."""
    config, spec, rank, device = worker.config, worker.spec, worker.rank, worker.device
    if best is None:
        raise RuntimeError("no epoch was trained (train.epochs 0?)")
    chosen = _best_checkpoint(best["epoch"])
    if chosen is None:
        raise RuntimeError(f"the checkpoint of best epoch {best['epoch']} is gone: Ray Train keeps the best "
                           f"checkpoints only when make_trainer gets checkpoint_score={SELECT_SCORE!r}")
    chosen_metrics, chosen = chosen.metrics, chosen.checkpoint
    if best["epoch"] != model_epoch:
        with chosen.as_directory() as directory:
            load_sharded(directory, sharded)
        rank0(rank, f"test split scored with epoch {best['epoch']}'s model (best {select}), not the last one's")
    test = gather(predict(sharded, shard_batches("test", config, collate), collate.padding_batch(), device))
    test_metrics, cells = _flat_metrics("test", test, spec)
    timeline.mark("test_scored")
    metrics = {k: v for k, v in chosen_metrics.items() if k not in ("epoch_end", SELECT_SCORE)}
    metrics.update(test_metrics, epoch=max(model_epoch, best["epoch"]), best_epoch=best["epoch"],
                   select_metric=select, best_checkpoint=chosen.path)
    files = {METRICS_FILE: {"summary": metrics, "cells": cells, "job": to_dict(config), "spec": loop_config["spec"],
                            "worker_nodes": worker_nodes(), "resumes": resumes, "timeline": timeline.moments,
                            "epochs": epoch_times},
             PREDICTIONS_FILE: lambda path: test.save(path, spec)}
    with tempfile.TemporaryDirectory() as directory:
        if rank == 0:
            write_files(directory, files)
        ray.train.report({**metrics, SELECT_SCORE: UNSCORED},
                         checkpoint=ray.train.Checkpoint.from_directory(directory))


def save_checkpoint(metrics: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    progress: dict[str, Any], rank: int, files: dict[str, Any]) -> None:
    """Collective: writes this rank's checkpoint shards, its RNG state and rank 0's `files`
    (JSON content, or a callable that writes the file at the path it is given), and reports them with `metrics` to Ray Train (which keeps the latest K)."""
    with tempfile.TemporaryDirectory() as directory:
        save_sharded(directory, model, optimizer, progress=progress,
                     rank_state={"torch_rng": torch.get_rng_state().tolist()})
        if rank == 0:
            write_files(directory, files)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))


def write_files(directory: str | Path, files: dict[str, Any]) -> None:
    """Each of `files` into `directory`: JSON content, or a callable writing the file at its path."""
    for name, content in files.items():
        if callable(content):  # writes its own file (e.g. Parquet predictions)
            content(Path(directory) / name)
        else:
            (Path(directory) / name).write_text(json.dumps(content, indent=2, default=json_default))
