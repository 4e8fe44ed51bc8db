"""What every Ray job needs: a Ray instance and a TorchTrainer over the data set's splits."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import ray
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from modules.strict import to_dict
from ray_jobs.core.config import JobConfig
from ray_jobs.data.dataset import SPLITS, Dataset
from ray_jobs.data.ingest import ray_datasets, training_ingest
from ray_jobs.training.fault_injection import from_env as injected_fault_from_env

# Quiet, reproducible defaults for local runs (a user's env vars still win).
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def init_ray(config: JobConfig) -> None:
    """Joins the cluster if there is one (RAY_ADDRESS / `ray job submit`), else starts local Ray.

    A local Ray gets more logical CPUs than the workers take, so Ray Data's read tasks always
    have CPU budget (with exactly as many CPUs as workers, reads wait forever).
    """
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init()
        return
    needed = config.workers.num_workers * config.workers.cpus_per_worker + 2
    ray.init(address="local", num_cpus=max(os.cpu_count() or 1, int(needed + 0.999)), include_dashboard=False,
             log_to_driver=True, configure_logging=False)


def make_trainer(config: JobConfig, dataset: Dataset, loop: Callable[[dict], None], run_name: str,
                 extra: dict[str, Any] | None = None, splits: tuple[str, ...] = SPLITS,
                 callbacks: list | None = None, dataset_config: ray.train.DataConfig | None = None,
                 checkpoint_score: str | None = None) -> TorchTrainer:
    """A TorchTrainer running `loop` on `config.workers` workers over the data set's splits
    plus one shuffled training dataset per epoch (`data.ingest.ray_datasets`).

    `dataset_config`: Ray Train's ingest (default `data.ingest.training_ingest`: block order,
    equal-sized training shards, evaluation shards keeping every row). `checkpoint_score`: the
    reported metric by which Ray Train keeps the best `train.keep_checkpoints` checkpoints
    (plus always the latest); None keeps the latest ones.
    """
    workers = config.workers
    loop_config = {"job": to_dict(config), "spec": to_dict(dataset.spec),
                   "train_rows": dataset.splits["train"].rows if "train" in dataset.splits else 0,
                   "injected_fault": injected_fault_from_env(),  # chaos testing only; None unless set
                   **(extra or {})}
    return TorchTrainer(
        loop,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=workers.num_workers, use_gpu=workers.use_gpu,
                                     placement_strategy=workers.placement_strategy,
                                     resources_per_worker={"CPU": workers.cpus_per_worker,
                                                           **({"GPU": 1} if workers.use_gpu else {})}),
        run_config=RunConfig(
            name=run_name,
            storage_path=str(Path(config.runs_dir).resolve()),
            failure_config=FailureConfig(max_failures=workers.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=config.train.keep_checkpoints,
                                               checkpoint_score_attribute=checkpoint_score,
                                               checkpoint_score_order="max"),
            callbacks=callbacks,
        ),
        torch_config=TorchConfig(backend="nccl" if workers.use_gpu else "gloo"),
        datasets=ray_datasets(dataset, splits, config, epochs=config.train.epochs),
        dataset_config=dataset_config or training_ingest(),
    )
