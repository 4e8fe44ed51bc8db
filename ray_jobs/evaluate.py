"""Evaluate a trained run: `python -m ray_jobs.evaluate --checkpoint <run dir> [--data <dir>]`.

Reloads the sharded DCP checkpoint on any number of workers (DCP reshards to the new plan),
scores a split and prints the same domain x task table the train job printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import ray.train
import torch
import torch.distributed as dist

from modules.spec import DatasetSpec
from modules.strict import ConfigError, from_dict
from ray_jobs.cli import exit_code
from ray_jobs.collate import Collator
from ray_jobs.config import JobConfig, load_config
from ray_jobs.data import SPLITS
from ray_jobs.evaluation import gather, predict
from ray_jobs.metrics import summary
from ray_jobs.report import format_table
from ray_jobs.runtime import init_ray, make_trainer, prepare_dataset
from ray_jobs.train_loop import METRICS_FILE, build_sharded_model, read_result, report_result, shard_batches
from sharding.checkpoint import load_sharded


def resolve_checkpoint(path: str | Path) -> tuple[Path, Path]:
    """(run directory, checkpoint directory) from either of them."""
    path = Path(path).resolve()
    if (path / "latest_checkpoint").exists():
        return path, Path((path / "latest_checkpoint").read_text().strip())
    if (path / ".metadata").exists():
        return path.parent, path
    raise ConfigError(f"{path}: neither a run directory (latest_checkpoint) nor a checkpoint (.metadata)")


def evaluate_loop_per_worker(loop_config: dict[str, Any]) -> None:
    config = from_dict(JobConfig, loop_config["job"])
    spec = DatasetSpec.from_json_dict(loop_config["spec"])
    split = loop_config["split"]
    device = ray.train.torch.get_device() if config.workers.use_gpu else torch.device("cpu")
    model, sharded, _ = build_sharded_model(config, spec, device)
    load_sharded(loop_config["checkpoint"], sharded)
    collate = Collator(spec, model.kjt_keys)
    predictions = gather(predict(sharded, shard_batches(split, config, collate),
                                 collate.padding_batch(), device))
    table = predictions.metrics(spec)
    metrics = {f"{split}_{k}": v for k, v in summary(table).items()}
    metrics["world_size"] = dist.get_world_size()
    report_result(metrics, {"metrics": metrics, "cells": table.to_dict(orient="records")})


def evaluate(checkpoint: str | Path, data: str | None = None, split: str = "test",
             num_workers: int | None = None) -> tuple[dict[str, float], pd.DataFrame]:
    """Scores `split` with the checkpointed model; returns (summary metrics, cells table)."""
    run_dir, checkpoint_dir = resolve_checkpoint(checkpoint)
    config = load_config(run_dir / "job.yaml")
    if data is not None:
        config = replace(config, data=replace(config.data, path=data, generate=None))
    if num_workers is not None:
        config = replace(config, workers=replace(config.workers, num_workers=num_workers))
    if split not in SPLITS:
        raise ConfigError(f"--split {split!r}: expected one of {SPLITS}")
    dataset = prepare_dataset(config)
    trained_spec = json.loads((run_dir / METRICS_FILE).read_text())["spec"]
    if DatasetSpec.from_json_dict(trained_spec) != dataset.spec:
        raise ConfigError(f"{dataset.root}/spec.json differs from the spec the model in {run_dir} was trained on")
    init_ray(config)
    trainer = make_trainer(config, dataset, evaluate_loop_per_worker, f"{run_dir.name}-eval-{split}",
                           extra={"split": split, "checkpoint": str(checkpoint_dir)}, splits=(split,))
    payload = read_result(trainer.fit())
    return payload["metrics"], pd.DataFrame(payload["cells"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="run directory (or one checkpoint directory)")
    parser.add_argument("--data", help="data set directory (default: the one trained on)")
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument("--num-workers", type=int, help="workers to evaluate on (any count)")
    args = parser.parse_args(argv)
    def body() -> None:
        metrics, cells = evaluate(args.checkpoint, args.data, args.split, args.num_workers)
        print(format_table(cells))
        print(f"[seesaw] {args.split} mean AUC {metrics[f'{args.split}_mean_auc']:.4f}, "
              f"mean GAUC {metrics[f'{args.split}_mean_gauc']:.4f} on {metrics['world_size']} worker(s)")

    return exit_code(body)


if __name__ == "__main__":
    sys.exit(main())
