"""Score a split with a checkpointed model on any number of workers (DCP reshards on load)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch.distributed as dist

from modules.spec import DatasetSpec
from modules.strict import ConfigError
from ray_jobs.core.run_dir import resolve_checkpoint, run_job, run_metrics
from ray_jobs.core.storage import local_copy
from ray_jobs.data.collate import Collator
from ray_jobs.data.dataset import SPLITS, prepare_dataset
from ray_jobs.data.ingest import evaluation_ingest
from ray_jobs.evaluation.metrics import summary
from ray_jobs.evaluation.predictions import gather, predict
from ray_jobs.training.runtime import init_ray, make_trainer
from ray_jobs.training.worker import WorkerContext, build_sharded_model, read_result, report_result, shard_batches
from sharding.checkpoint import load_sharded


def score_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point: load the checkpoint into this worker's shards, score its part of
    the split in lockstep, gather every worker's predictions and report the metrics."""
    worker = WorkerContext.from_loop_config(loop_config)
    split = loop_config["split"]
    model, sharded, _ = build_sharded_model(worker.config, worker.spec, worker.device)
    with local_copy(loop_config["checkpoint"]) as checkpoint:  # on storage: downloaded (DCP reads local files)
        load_sharded(checkpoint, sharded)
    collate = Collator(worker.spec, model.kjt_keys)
    predictions = gather(predict(sharded, shard_batches(split, worker.config, collate),
                                 collate.padding_batch(), worker.device))
    table = predictions.metrics(worker.spec)
    metrics = {f"{split}_{k}": v for k, v in summary(table).items()}
    metrics["world_size"] = dist.get_world_size()
    report_result(metrics, {"metrics": metrics, "cells": table.to_dict(orient="records")})


def score_checkpoint(checkpoint: str | Path, data: str | None = None, split: str = "test",
                     num_workers: int | None = None) -> tuple[dict[str, float], pd.DataFrame]:
    """Scores `split` with the checkpointed model; returns (summary metrics, cells table).

    `checkpoint` is a run directory or one checkpoint directory (a path or a storage URI); `data` another data set with
    the same spec (default: the one trained on); `num_workers` any count (default: as trained).
    """
    run_dir, checkpoint_dir = resolve_checkpoint(checkpoint)
    config = run_job(run_dir)
    if data is not None:
        config = replace(config, data=replace(config.data, path=data, generate=None))
    if num_workers is not None:
        config = replace(config, workers=replace(config.workers, num_workers=num_workers))
    if split not in SPLITS:
        raise ConfigError(f"--split {split!r}: expected one of {SPLITS}")
    dataset = prepare_dataset(config)
    trained_spec = run_metrics(run_dir)["spec"]
    if DatasetSpec.from_json_dict(trained_spec) != dataset.spec:
        raise ConfigError(f"{dataset.root}/spec.json differs from the spec the model in {run_dir} was trained on")
    init_ray(config)
    trainer = make_trainer(config, dataset, score_loop_per_worker, f"{run_dir.name}-eval-{split}",
                           extra={"split": split, "checkpoint": str(checkpoint_dir)}, splits=(split,),
                           dataset_config=evaluation_ingest())
    payload = read_result(trainer.fit())
    return payload["metrics"], pd.DataFrame(payload["cells"])
