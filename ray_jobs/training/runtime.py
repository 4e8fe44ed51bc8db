"""What every Ray job needs: a Ray instance and a TorchTrainer over the data set's splits."""

from __future__ import annotations

import os
from typing import Any, Callable

import ray
import ray.data
from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from modules.strict import to_dict
from ray_jobs.core import console
from ray_jobs.core.config import JobConfig
from ray_jobs.core.storage import ray_storage
from ray_jobs.data.dataset import SPLITS, Dataset
from ray_jobs.data.ingest import ray_datasets, training_ingest
from ray_jobs.training.fault_injection import from_env as injected_fault_from_env

# Ray's env-var settings (RAY_TRAIN_V2_ENABLED, ...) are set by ray_jobs/__init__.py, before Ray
# is imported: see ray_jobs.core.console.


def start_local_ray(num_cpus: int) -> None:
    """A fresh local Ray (never a cluster another process left running) with the dashboard.

    The dashboard serves the State API, which Ray Train's PlacementGroupCleaner polls every
    second (without it, it logs a warning each time), and the Jobs API (`ray job submit`).
    Every Ray process runs `console.worker_process_setup` first (its console quiet, and
    RAY_ADDRESS naming this cluster for the State API); worker output reaches the driver.
    """
    # a local machine is not preempted (and Ray Train's watcher actor logs a core-worker error)
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    # Ray Train's controller polls its workers every 2 s by default, so a finished (or failed)
    # worker group waited up to 2 s to be noticed: 4.2 s from the test report to fit()
    # returning in a 3-epoch KuaiRand job, 1.4 s at 0.5 s. The processes of this Ray inherit it.
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=True, log_to_driver=True,
             configure_logging=False,
             runtime_env={"worker_process_setup_hook": "ray_jobs.core.console.worker_process_setup",
                          "env_vars": {k: os.environ[k] for k in (console.VERBOSE_ENV,) if k in os.environ}})
    ray.data.DataContext.get_current().print_on_execution_start = console.verbose()
    # Ray Data's resource coordinator (an actor Ray Train and Ray Data ask for CPU shares) starts
    # on the first request, inside a 5 s timeout that a busy machine misses (a warning with a
    # traceback each time): start it here, once, and wait until it is up.
    from ray.data._internal.cluster_autoscaler import get_or_create_autoscaling_coordinator

    ray.get(get_or_create_autoscaling_coordinator().__ray_ready__.remote())


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
    needed = config.workers.max_workers * config.workers.cpus_per_worker + 2
    start_local_ray(max(os.cpu_count() or 1, int(needed + 0.999)))


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
    storage_path, storage_filesystem = ray_storage(config.runs_dir)
    loop_config = {"job": to_dict(config), "spec": to_dict(dataset.spec),
                   "train_rows": dataset.splits["train"].rows if "train" in dataset.splits else 0,
                   "injected_fault": injected_fault_from_env(),  # chaos testing only; None unless set
                   **(extra or {})}
    return TorchTrainer(
        loop,
        train_loop_config=loop_config,
        # a range [min, max] is Ray Train v2's elastic group (`WorkersConfig`, `training.elastic`)
        scaling_config=ScalingConfig(num_workers=workers.num_workers, use_gpu=workers.use_gpu,
                                     elastic_resize_monitor_interval_s=workers.resize_interval_s,
                                     placement_strategy=workers.placement_strategy,
                                     resources_per_worker={"CPU": workers.cpus_per_worker,
                                                           **({"GPU": 1} if workers.use_gpu else {})}),
        run_config=RunConfig(
            name=run_name,
            storage_path=storage_path, storage_filesystem=storage_filesystem,  # core.storage: path or URI
            failure_config=FailureConfig(max_failures=workers.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=config.train.keep_checkpoints,
                                               checkpoint_score_attribute=checkpoint_score,
                                               checkpoint_score_order="max"),
            callbacks=callbacks,
            # Ray Train's own INFO lines (resource requests, worker group start) go to its log files
            logging_config=LoggingConfig(log_level="INFO" if console.verbose() else "WARNING"),
        ),
        torch_config=TorchConfig(backend="nccl" if workers.use_gpu else "gloo"),
        datasets=ray_datasets(dataset, splits, config, epochs=config.train.epochs),
        dataset_config=dataset_config or training_ingest(),
    )
