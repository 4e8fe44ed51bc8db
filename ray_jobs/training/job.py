"""The driver side of one training job: validate, start Ray, fit, and fill the run directory."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pandas as pd
import ray.train

from modules.dense.registry import parse_arch_config
from modules.strict import ConfigError
from ray_jobs.core import console
from ray_jobs.core.config import JobConfig, dump_config
from ray_jobs.core.log import logger
from ray_jobs.core.run_dir import (BEST_CHECKPOINT_FILE, JOB_FILE, LATEST_CHECKPOINT_FILE, METRICS_FILE,
                                   PREDICTIONS_FILE, TENSORBOARD_DIR, checkpoint_location, run_location)
from ray_jobs.core.storage import Location, local_mirror
from ray_jobs.core.tables import cell, cells_table
from ray_jobs.core.timeline import Timeline, process_started
from ray_jobs.data.dataset import prepare_dataset
from ray_jobs.training.elastic import DRIVER_ID
from ray_jobs.training.entry import train_loop_per_worker
from ray_jobs.training.run_lock import hold_run
from ray_jobs.training.runtime import init_ray, make_trainer
from ray_jobs.training.selection import SELECT_SCORE, select_metric_name, validation_metric_names


def train(config: JobConfig, run_name: str | None = None) -> Path | str:
    """Trains, evaluates on the test split, and returns the run directory (a Path, or the URI
    of a run directory on storage: `runs_dir` a URI, `core.storage`).

    The run directory (`core.run_dir`) gets metrics.json, the test predictions, job.yaml and
    pointers to the best-validation and the last checkpoint; the console gets the domain x task
    table of the test split (scored with the best epoch's model).
    """
    timeline = Timeline(driver_process_started=process_started())
    timeline.mark("train_called")
    parse_arch_config(config.model.arch, config.model.params)  # fail on a typo before starting Ray
    if config.collision:
        raise ConfigError("collision (bounded raw-id features) is trained pass by pass: use --passes <dir>")
    dataset = prepare_dataset(config)
    select = select_metric_name(config, dataset.spec)
    if select not in validation_metric_names(dataset.spec):
        raise ConfigError(f"train.select_metric {select!r}: no such validation metric; "
                          f"valid: {validation_metric_names(dataset.spec)}")
    run_name = run_name or f"{config.name}-{config.model.arch}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = run_location(config.runs_dir, run_name)
    lock = hold_run(run_dir)  # one driver per run; a rerun of the same name resumes it
    try:
        init_ray(config)
        timeline.mark("ray_ready")
        log_file = console.log_to_file(local_mirror(run_dir) / console.LOGS_DIR / console.DRIVER_LOG)
        try:
            # a new id per driver process: a resume tells a restarted driver from a restarted group
            trainer = make_trainer(config, dataset, train_loop_per_worker, run_name, extra={DRIVER_ID: uuid.uuid4().hex},
                                   checkpoint_score=SELECT_SCORE)
            timeline.mark("datasets_ready")  # the splits read (and materialised) into Ray's object store
            result = trainer.fit()
            timeline.mark("fit_returned")
        finally:
            console.remove_handler(log_file)
            console.publish_logs(run_dir, console.DRIVER_LOG)
        if result.error:
            raise result.error
        _write_run_dir(run_dir, config, result, timeline)
    finally:
        lock.release()
    return run_dir.local if not run_dir.scheme else str(run_dir)


def _write_run_dir(run_dir: Location, config: JobConfig, result: ray.train.Result, timeline: Timeline) -> None:
    """The driver's files of a finished run (`core.run_dir`), and the test table on the console.

    metrics.json's `timeline`: the driver's and rank 0's moments (`core.timeline`), in seconds
    since the driver process started."""
    with result.checkpoint.as_directory() as checkpoint_dir:  # a local copy when on storage
        metrics = json.loads((Path(checkpoint_dir) / METRICS_FILE).read_text())
        run_dir.child(PREDICTIONS_FILE).copy_file_from(Path(checkpoint_dir) / PREDICTIONS_FILE)
    timeline.update(metrics.get("timeline") or {})
    timeline.mark("results_fetched")
    origin = timeline.moments["driver_process_started"]
    metrics["timeline"] = timeline.since(origin)
    best = checkpoint_location(run_dir, metrics["summary"]["best_checkpoint"])
    metrics["summary"]["best_checkpoint"] = str(best)  # the URI on storage (Ray reports it scheme-less)
    run_dir.child(METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    run_dir.child(JOB_FILE).write_text(dump_config(config))
    run_dir.child(BEST_CHECKPOINT_FILE).write_text(f"{best}\n")
    models = [checkpoint_location(run_dir, c.path) for c, m in result.best_checkpoints
              if "epoch" in m and "best_checkpoint" not in m]
    models = [p for p in models if p.exists()]
    if models:  # the last model checkpoint still kept (the results report after it holds no model)
        run_dir.child(LATEST_CHECKPOINT_FILE).write_text(f"{max(models, key=lambda p: p.path)}\n")
    logger.info("%s", cells_table(pd.DataFrame(metrics["cells"])))
    summary = metrics["summary"]
    logger.info("test mean AUC %s, mean GAUC %s (epoch %d of %d, best %s)", cell(summary["test_mean_auc"]),
                cell(summary["test_mean_gauc"]), summary["best_epoch"], summary["epoch"], summary["select_metric"])
    logger.info("time (s since start): %s", timeline.format(origin))
    logger.info("run directory: %s (curves: tensorboard --logdir %s)", run_dir, run_dir.child(TENSORBOARD_DIR))
