"""The driver side of one training job: validate, start Ray, fit, and fill the run directory."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd

from modules.dense.registry import parse_arch_config
from modules.strict import ConfigError
from ray_jobs.core import console
from ray_jobs.core.config import JobConfig, dump_config
from ray_jobs.core.log import logger
from ray_jobs.core.run_dir import JOB_FILE, LATEST_CHECKPOINT_FILE, METRICS_FILE, PREDICTIONS_FILE
from ray_jobs.core.tables import cells_table
from ray_jobs.data.dataset import prepare_dataset
from ray_jobs.data.ingest import ordered_ingest
from ray_jobs.training.loop import train_loop_per_worker
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
    init_ray(config)
    run_name = run_name or f"{config.name}-{config.model.arch}-{time.strftime('%Y%m%d-%H%M%S')}"
    # mid-epoch checkpoints resume at a batch position, which means the same batches only in order
    ingest = ordered_ingest() if config.train.checkpoint_every_steps else None
    run_dir = Path(config.runs_dir).resolve() / run_name
    log_file = console.log_to_file(run_dir / console.LOGS_DIR / console.DRIVER_LOG)
    try:
        trainer = make_trainer(config, dataset, train_loop_per_worker, run_name, dataset_config=ingest)
        result = trainer.fit()
    finally:
        console.remove_handler(log_file)
    if result.error:
        raise result.error
    with result.checkpoint.as_directory() as checkpoint_dir:
        metrics = json.loads((Path(checkpoint_dir) / METRICS_FILE).read_text())
        shutil.copyfile(Path(checkpoint_dir) / PREDICTIONS_FILE, run_dir / PREDICTIONS_FILE)
    (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    (run_dir / JOB_FILE).write_text(dump_config(config))
    (run_dir / LATEST_CHECKPOINT_FILE).write_text(result.checkpoint.path + "\n")
    logger.info("%s", cells_table(pd.DataFrame(metrics["cells"])))
    logger.info("test mean AUC %.4f, mean GAUC %.4f", metrics["summary"]["test_mean_auc"],
                metrics["summary"]["test_mean_gauc"])
    logger.info("run directory: %s", run_dir)
    return run_dir
