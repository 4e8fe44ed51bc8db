"""What every Ray job needs: a Ray instance and a TorchTrainer over the data set's splits."""

from __future__ import annotations

import os
from typing import Any, Callable

import ray
import ray.data
from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer
from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback

from modules.strict import to_dict
from ray_jobs.core import console
from ray_jobs.core.config import JobConfig
from ray_jobs.core.storage import ray_storage
from ray_jobs.data.dataset import SPLITS, Dataset
from ray_jobs.data.ingest import ray_datasets, training_ingest
from ray_jobs.training.fault_injection import from_env as injected_fault_from_env

# Ray's env-var settings (RAY_TRAIN_V2_ENABLED, ...) are set by ray_jobs/__init__.py, before Ray
# is imported: see ray_jobs.core.console.


# Set by `start_local_ray` in the driver that started a local Ray without the dashboard: its
# trainers leave out Ray Train's PlacementGroupCleaner (`SeesawTrainer`).
_LOCAL_RAY_WITHOUT_STATE_API = False

# SEESAW_LOCAL_DASHBOARD=1: a local train/evaluate/compare job starts Ray's dashboard too
# (http://127.0.0.1:8265), at about 3 s of start-up on 2 cores.
LOCAL_DASHBOARD_ENV = "SEESAW_LOCAL_DASHBOARD"


def start_local_ray(num_cpus: int, dashboard: bool = True) -> None:
    """A fresh local Ray (never a cluster another process left running).

    `dashboard`: the dashboard serves the State API, through which Ray Train's
    PlacementGroupCleaner (a detached actor per trainer) finds out that a controller died and
    removes its workers' placement groups. A Tune search needs it: a stopped trial's controller
    is killed, not shut down, and without the cleaner its workers' CPUs were never freed (the
    search hung). One job's trainer (train, evaluate, compare) does not: its controller shuts
    down with its placement groups or dies with the driver, and with it this local Ray. Without
    the dashboard, Ray starts 11 Python processes fewer (the dashboard and its 10 modules) and
    that job's trainers start no cleaner (which would warn every second that it cannot reach
    the State API): a 3-epoch KuaiRand job is about 4 s quicker on 2 cores (BENCHMARKS.md).
    Every Ray process runs `console.worker_process_setup` first (its console quiet, and
    RAY_ADDRESS naming this cluster for the State API); worker output reaches the driver.
    """
    global _LOCAL_RAY_WITHOUT_STATE_API
    # a local machine is not preempted (and Ray Train's watcher actor logs a core-worker error)
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    # Ray Train's controller polls its workers every 2 s by default, so a finished (or failed)
    # worker group waited up to 2 s to be noticed: 4.2 s from the test report to fit()
    # returning in a 3-epoch KuaiRand job, 1.4 s at 0.5 s. The processes of this Ray inherit it.
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=dashboard, log_to_driver=True,
             configure_logging=False,
             runtime_env={"worker_process_setup_hook": "ray_jobs.core.console.worker_process_setup",
                          "env_vars": {k: os.environ[k] for k in (console.VERBOSE_ENV,) if k in os.environ}})
    ray.data.DataContext.get_current().print_on_execution_start = console.verbose()
    # Ray Data's resource coordinator (an actor Ray Train and Ray Data ask for CPU shares) starts
    # on the first request, inside Ray Train's 5 s timeout, which a busy machine missed (a
    # warning with a traceback each time). So it is created here, as Ray comes up. Nothing waits
    # for it: Ray Data's requests do not block, and Ray Train's first one comes seconds later,
    # from its controller. The wait used to cost the job 1.4 s on 2 cores.
    from ray.data._internal.cluster_autoscaler import get_or_create_autoscaling_coordinator

    get_or_create_autoscaling_coordinator()
    _LOCAL_RAY_WITHOUT_STATE_API = not dashboard


def init_ray(config: JobConfig, tune: bool = False) -> None:
    """Joins the cluster if there is one (RAY_ADDRESS / `ray job submit`), else starts local Ray.

    A local Ray gets more logical CPUs than the workers take, so Ray Data's read tasks always
    have CPU budget (with exactly as many CPUs as workers, reads wait forever). `tune`: a Tune
    search's local Ray, with the dashboard its trials' placement-group cleaners need
    (`start_local_ray`); other jobs start it only with SEESAW_LOCAL_DASHBOARD=1.
    """
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init()
        return
    needed = config.workers.max_workers * config.workers.cpus_per_worker + 2
    dashboard = tune or os.environ.get(LOCAL_DASHBOARD_ENV, "") not in ("", "0")
    start_local_ray(max(os.cpu_count() or 1, int(needed + 0.999)), dashboard=dashboard)


class SeesawTrainer(TorchTrainer):
    """Ray Train's TorchTrainer, less the PlacementGroupCleaner in a driver whose local Ray has
    no State API (`start_local_ray`): there the cleaner could never query its controller, and
    it is not needed (the placement groups go with the controller or with this Ray).

    It overrides `_create_default_callbacks`, a private method of Ray Train 2.60's
    DataParallelTrainer; `tests/ray_jobs/test_runtime.py` fails if that method stops returning
    the cleaner callback, or if a dashboard-less job starts one.
    """

    def _create_default_callbacks(self):
        callbacks = super()._create_default_callbacks()
        if not _LOCAL_RAY_WITHOUT_STATE_API:
            return callbacks
        return [c for c in callbacks if not isinstance(c, PlacementGroupCleanerCallback)]


def make_trainer(config: JobConfig, dataset: Dataset, loop: Callable[[dict], None], run_name: str,
                 extra: dict[str, Any] | None = None, splits: tuple[str, ...] = SPLITS,
                 callbacks: list | None = None, dataset_config: ray.train.DataConfig | None = None,
                 checkpoint_score: str | None = None) -> SeesawTrainer:
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
    return SeesawTrainer(
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
