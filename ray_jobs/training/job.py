"""The driver side of one training job: validate, start Ray, fit, and fill the run directory."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import ray.train

from modules.dense.registry import parse_arch_config
from modules.strict import ConfigError
from ray_jobs.core import console
from ray_jobs.core.config import JobConfig, dump_config
from ray_jobs.core.log import logger
from ray_jobs.core.run_dir import (BEST_CHECKPOINT_FILE, JOB_FILE, LATEST_CHECKPOINT_FILE, METRICS_FILE, PREDICTIONS_FILE,
                                   TENSORBOARD_DIR)
from ray_jobs.core.tables import cell, cells_table
from ray_jobs.data.dataset import prepare_dataset
from ray_jobs.training.loop import SELECT_SCORE, select_metric_name, train_loop_per_worker, validation_metric_names
from ray_jobs.training.run_lock import hold_run
from ray_jobs.training.runtime import init_ray, make_trainer


def train(config: JobConfig, run_name: str | None = None) -> Path:
    """Trains, evaluates on the test split, and returns the run directory.

    The run directory (`core.run_dir`) gets metrics.json, the test predictions, job.yaml and
    pointers to the best-validation and the last checkpoint; the console gets the domain x task
    table of the test split (scored with the best epoch's model).
    """
    parse_arch_config(config.model.arch, config.model.params)  # fail on a typo before starting Ray
    if config.collision:
        raise ConfigError("collision (bounded raw-id features) is trained pass by pass: use --passes <dir>")
    dataset = prepare_dataset(config)
    select = select_metric_name(config, dataset.spec)
    if select not in validation_metric_names(dataset.spec):
        raise ConfigError(f"train.select_metric {select!r}: no such validation metric; "
                          f"valid: {validation_metric_names(dataset.spec)}")
    run_name = run_name or f"{config.name}-{config.model.arch}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(config.runs_dir).resolve() / run_name
    lock = hold_run(run_dir)  # one driver per run; a rerun of the same name resumes it
    try:
        init_ray(config)
        log_file = console.log_to_file(run_dir / console.LOGS_DIR / console.DRIVER_LOG)
        try:
            result = make_trainer(config, dataset, train_loop_per_worker, run_name,
                                  checkpoint_score=SELECT_SCORE).fit()
        finally:
            console.remove_handler(log_file)
        if result.error:
            raise result.error
        _write_run_dir(run_dir, config, result)
    finally:
        lock.release()
    return run_dir


def _write_run_dir(run_dir: Path, config: JobConfig, result: ray.train.Result) -> None:
    """The driver's files of a finished run (`core.run_dir`), and the test table on the console."""
    with result.checkpoint.as_directory() as checkpoint_dir:
        metrics = json.loads((Path(checkpoint_dir) / METRICS_FILE).read_text())
        shutil.copyfile(Path(checkpoint_dir) / PREDICTIONS_FILE, run_dir / PREDICTIONS_FILE)
    (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    (run_dir / JOB_FILE).write_text(dump_config(config))
    (run_dir / BEST_CHECKPOINT_FILE).write_text(metrics["summary"]["best_checkpoint"] + "\n")
    models = [c.path for c, m in result.best_checkpoints if "epoch" in m and "best_checkpoint" not in m]
    models = [p for p in models if Path(p).exists()]
    if models:  # the last model checkpoint still kept (the results report after it holds no model)
        (run_dir / LATEST_CHECKPOINT_FILE).write_text(max(models) + "\n")
    logger.info("%s", cells_table(pd.DataFrame(metrics["cells"])))
    summary = metrics["summary"]
    logger.info("test mean AUC %s, mean GAUC %s (epoch %d of %d, best %s)", cell(summary["test_mean_auc"]),
                cell(summary["test_mean_gauc"]), summary["best_epoch"], summary["epoch"], summary["select_metric"])
    logger.info("run directory: %s (curves: tensorboard --logdir %s)", run_dir, run_dir / TENSORBOARD_DIR)
