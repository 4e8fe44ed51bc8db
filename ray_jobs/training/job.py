"""The driver side of one training job: validate, start Ray, fit, and fill the run directory."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd

from modules.dense.registry import parse_arch_config
from modules.strict import ConfigError
from ray_jobs.core.config import JobConfig, dump_config
from ray_jobs.core.log import logger
from ray_jobs.core.run_dir import JOB_FILE, LATEST_CHECKPOINT_FILE, METRICS_FILE, PREDICTIONS_FILE
from ray_jobs.core.tables import cells_table
from ray_jobs.data.dataset import prepare_dataset
from ray_jobs.data.ingest import ordered_ingest
from ray_jobs.training.loop import train_loop_per_worker
from ray_jobs.training.run_lock import hold_run
from ray_jobs.training.runtime import init_ray, make_trainer


def train(config: JobConfig, run_name: str | None = None) -> Path:
    """Trains, evaluates on the test split, and returns the run directory.

    The run directory (`core.run_dir`) gets metrics.json, the test predictions, job.yaml and a
    pointer to the last checkpoint; the console gets the domain x task table of the test split.
    """
    parse_arch_config(config.model.arch, config.model.params)  # fail on a typo before starting Ray
    if config.collision:
        raise ConfigError("collision (bounded raw-id features) is trained pass by pass: use --passes <dir>")
    dataset = prepare_dataset(config)
    run_name = run_name or f"{config.name}-{config.model.arch}-{time.strftime('%Y%m%d-%H%M%S')}"
    lock = hold_run(Path(config.runs_dir).resolve() / run_name)  # one driver per run; a rerun resumes it
    init_ray(config)
    # mid-epoch checkpoints resume at a batch position, which means the same batches only in order
    ingest = ordered_ingest() if config.train.checkpoint_every_steps else None
    trainer = make_trainer(config, dataset, train_loop_per_worker, run_name, dataset_config=ingest)
    result = trainer.fit()
    if result.error:
        raise result.error
    run_dir = Path(config.runs_dir).resolve() / run_name
    with result.checkpoint.as_directory() as checkpoint_dir:
        metrics = json.loads((Path(checkpoint_dir) / METRICS_FILE).read_text())
        shutil.copyfile(Path(checkpoint_dir) / PREDICTIONS_FILE, run_dir / PREDICTIONS_FILE)
    (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    (run_dir / JOB_FILE).write_text(dump_config(config))
    (run_dir / LATEST_CHECKPOINT_FILE).write_text(result.checkpoint.path + "\n")
    print(cells_table(pd.DataFrame(metrics["cells"])))
    logger.info("test mean AUC %.4f, mean GAUC %.4f", metrics["summary"]["test_mean_auc"],
                metrics["summary"]["test_mean_gauc"])
    logger.info("run directory: %s", run_dir)
    lock.release()
    return run_dir
