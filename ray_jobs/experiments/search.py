"""Hyper-parameter search with Ray Tune (the library half of `python -m ray_jobs.tune`).

Each Ray Tune trial is a small function that runs one distributed TorchTrainer (the same
`make_trainer` + `train_loop_per_worker` as `ray_jobs.train`); TuneReportCallback forwards
the workers' per-epoch reports to Tune, where ASHA stops the weak trials early. The
experiment lives under `<storage>/<name>`: running the same command again resumes it.
At the end the trials table (trials.csv, trials.md) and a ready-to-run `best_config.yaml`
are written into the experiment directory.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import ray
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune import Callback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.variant_generator import generate_variants

from modules.strict import ConfigError
from ray_jobs.core import console
from ray_jobs.core.config import JobConfig, ModelConfig, WorkersConfig, apply_overrides, dump_config
from ray_jobs.core.log import logger
from ray_jobs.core.paths import local_only
from ray_jobs.core.storage import local_path
from ray_jobs.core.tables import markdown
from ray_jobs.data.dataset import Dataset, prepare_dataset
from ray_jobs.training.entry import train_loop_per_worker
from ray_jobs.training.runtime import init_ray, make_trainer
from ray_jobs.training.selection import SELECT_SCORE

# A trial's own process only waits on trainer.fit(); Tune rejects {"CPU": 0}.
TRIAL_CPUS = 0.01
# CPU left per trial for its Ray Data read tasks, so concurrent trials never starve each other's input.
DATA_CPUS_PER_TRIAL = 1.0
# The inner TorchTrainer's run name inside its trial directory: fixed, so a restored trial resumes it.
INNER_RUN = "train"
TIME_ATTR = "epoch"
FINISHED = ("done", "stopped early", "error")  # trial statuses in the table that a resume leaves alone
TRIALS_CSV, TRIALS_MD, BEST_CONFIG = "trials.csv", "trials.md", "best_config.yaml"


@dataclass(frozen=True)
class SearchOptions:
    """How to search; the model, data and training come from the base JobConfig.

    Attributes:
        num_samples: trials to sample (each grid point is sampled this many times).
        metric: validation metric reported per epoch, maximised.
        name: experiment name (None: tune-<model>); an existing experiment of that name resumes.
        storage: directory holding the experiment directory (None: the base config's runs_dir).
        max_concurrent: trials at once; None derives it from the cluster's resources.
        reduction_factor: ASHA keeps 1/reduction_factor of the trials at each rung.
    """

    name: str | None = None
    storage: str | None = None
    num_samples: int = 8
    metric: str = "val_mean_gauc"
    max_concurrent: int | None = None
    reduction_factor: int = 2


def load_space(path: str | Path) -> tuple[str, dict[str, Any]]:
    """(ARCH, space()) of a search-space module given by file path (tune_spaces/<model>.py)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: search space file not found")
    module_spec = importlib.util.spec_from_file_location(f"_seesaw_space_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not isinstance(getattr(module, "ARCH", None), str) or not callable(getattr(module, "space", None)):
        raise ConfigError(f"{path}: a search space module defines ARCH = '<model>' and space() -> dict")
    return module.ARCH, module.space()


def check_space(base: JobConfig, space: Mapping[str, Any], samples: int = 16) -> None:
    """Builds a few sampled configs before any trial starts, so a bad space fails at once."""
    for _, variant in itertools.islice(generate_variants({"config": dict(space)}), samples):
        apply_overrides(base, variant["config"], where="search space")


def max_concurrent_trials(workers: WorkersConfig, resources: Mapping[str, float]) -> int:
    """Trials that fit the cluster at once (at least 1), so none waits for resources forever.

    A trial takes its workers' CPUs (and GPUs), plus CPU for its Ray Data reads.
    """
    per_trial = workers.max_workers * workers.cpus_per_worker + DATA_CPUS_PER_TRIAL + TRIAL_CPUS
    fit = math.floor(resources.get("CPU", 0.0) / per_trial)
    if workers.use_gpu:
        fit = min(fit, math.floor(resources.get("GPU", 0.0) / workers.max_workers))
    return max(1, fit)


def trial_dirname(trial_id: str) -> str:
    """A trial's directory under the experiment (short: the default spells out every sampled value)."""
    return f"trial_{trial_id}"


def _trial_dirname_creator(trial: Any) -> str:
    return trial_dirname(trial.trial_id)


def run_trial(overrides: dict[str, Any], base: JobConfig, dataset: Dataset, experiment_dir: str) -> None:
    """One trial: a distributed TorchTrainer run whose epoch reports reach Tune.

    The inner run is stored in the trial's directory on the experiment storage (not in the
    session-local `get_trial_dir()`), under a fixed name: trials never collide, and a restored
    trial's TorchTrainer finds its run again and resumes from the last checkpoint.
    """
    trial_dir = Path(experiment_dir) / trial_dirname(tune.get_context().get_trial_id())
    config = replace(apply_overrides(base, overrides, where="search space"), runs_dir=str(trial_dir))
    make_trainer(config, dataset, train_loop_per_worker, INNER_RUN, callbacks=[TuneReportCallback()],
                 checkpoint_score=SELECT_SCORE).fit()


def _status(trial: Any, max_epochs: int) -> str:
    epochs = trial.last_result.get(TIME_ATTR, 0)
    if trial.status == "TERMINATED":
        return "done" if epochs >= max_epochs else "stopped early"
    return trial.status.lower()


def trials_table(experiment_dir: Path, keys: list[str], metric: str, max_epochs: int) -> pd.DataFrame:
    """One row per trial, best first: its sampled values, last `metric`, epochs run and status."""
    analysis = tune.ExperimentAnalysis(str(experiment_dir))
    rows = [{"trial_id": t.trial_id, **{k: t.config.get(k) for k in keys},
             metric: t.last_result.get(metric), "epochs": t.last_result.get(TIME_ATTR, 0),
             "status": _status(t, max_epochs)} for t in analysis.trials]
    return pd.DataFrame(rows).sort_values(metric, ascending=False, na_position="last", ignore_index=True)


class TrialLines(Callback):
    """One Seesaw line per finished trial, in place of Tune's status table every 30 s
    (`--verbose` brings the table back)."""

    def __init__(self, metric: str) -> None:
        self._metric = metric

    def _line(self, trial: Any, how: str) -> None:
        result = trial.last_result or {}
        value = result.get(self._metric)
        logger.info("trial %s %s after %d epoch(s): %s %s", trial.trial_id, how, result.get(TIME_ATTR, 0),
                    self._metric, "-" if value is None else f"{value:.4f}")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, "finished")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, "failed")


def _run_config(name: str, experiment_dir: Path, metric: str) -> tune.RunConfig:
    return tune.RunConfig(name=name, storage_path=str(experiment_dir.parent), callbacks=[TrialLines(metric)],
                          verbose=None if console.verbose() else 0)


def _new_tuner(trainable: Any, space: dict[str, Any], base: JobConfig, name: str, experiment_dir: Path,
               options: SearchOptions) -> tune.Tuner:
    concurrent = options.max_concurrent or max_concurrent_trials(base.workers, ray.cluster_resources())
    logger.info("search %r: %d sample(s), %d worker(s) per trial, up to %d trial(s) at once", name,
                options.num_samples, base.workers.num_workers, concurrent)
    scheduler = ASHAScheduler(time_attr=TIME_ATTR, metric=options.metric, mode="max", max_t=base.train.epochs,
                              grace_period=1, reduction_factor=options.reduction_factor)
    return tune.Tuner(
        trainable, param_space=space,
        tune_config=tune.TuneConfig(num_samples=options.num_samples, scheduler=scheduler,
                                    max_concurrent_trials=concurrent, trial_dirname_creator=_trial_dirname_creator),
        run_config=_run_config(name, experiment_dir, options.metric),
    )


def search(base: JobConfig, space_path: str | Path, options: SearchOptions) -> Path:
    """Runs (or resumes) the search, writes its results and returns the experiment directory.

    `base.model.arch` is set to the space's ARCH (params reset if it was another model).
    """
    base = local_only(base, "tune")  # Tune's trials write local files (experiment_dir, trial dirs)
    if options.storage:
        options = replace(options, storage=local_path(options.storage, "--storage", "tune"))
    arch, space = load_space(space_path)
    if base.model.arch != arch:
        base = replace(base, model=ModelConfig(arch=arch))
    check_space(base, space)
    dataset = prepare_dataset(base)
    if dataset.spec.group_column is None and options.metric == SearchOptions.metric:
        logger.info("%s has no GAUC groups: tuning on val_mean_auc instead of %s", dataset.root, options.metric)
        options = replace(options, metric="val_mean_auc")
    init_ray(base, tune=True)  # the dashboard: stopped trials' placement groups are removed
    name = options.name or f"tune-{arch}"
    experiment_dir = Path(options.storage or base.runs_dir).resolve() / name
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, base=base, dataset=dataset, experiment_dir=str(experiment_dir)),
        {"CPU": TRIAL_CPUS})
    if tune.Tuner.can_restore(experiment_dir):
        logger.info("resuming the search in %s", experiment_dir)
        tuner = tune.Tuner.restore(str(experiment_dir), trainable, resume_unfinished=True)
    else:
        tuner = _new_tuner(trainable, space, base, name, experiment_dir, options)
    results = tuner.fit()

    table = trials_table(experiment_dir, list(space), options.metric, base.train.epochs)
    table.to_csv(experiment_dir / TRIALS_CSV, index=False)
    (experiment_dir / TRIALS_MD).write_text(markdown(table))
    print(markdown(table))
    # The saved state, not `results`, tells an interrupted search: Tune's cleanup ends its trials.
    if not table["status"].isin(FINISHED).all():
        logger.info("search interrupted; run the same command again to resume it (%s)", experiment_dir)
        return experiment_dir
    best = results.get_best_result(options.metric, mode="max")
    best_config = replace(apply_overrides(base, best.config, where="search space"), name=f"{base.name}-{name}-best")
    (experiment_dir / BEST_CONFIG).write_text(dump_config(best_config))
    logger.info("best %s %.4f; train it with: python -m ray_jobs.train --config %s", options.metric,
                best.metrics[options.metric], experiment_dir / BEST_CONFIG)
    return experiment_dir
