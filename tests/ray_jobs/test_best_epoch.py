"""The test split is scored with the best-validation epoch's model, and `train.patience` stops
a run whose validation stops improving.

Constructed so that the answer is known: the validation split is 1,999 training rows with every
label flipped, and the test split the same rows as they are. Training fits its own rows better
every epoch, so validation gets worse every epoch: epoch 1 is the best, patience 1 stops after
epoch 2. For one model, AUC on flipped labels is 1 - AUC (GAUC too, user by user), so the
test figures in metrics.json are those of epoch 1's model exactly when val + test = 1.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from modules.spec import DatasetSpec
from ray_jobs.core.config import DataConfig, JobConfig, ModelConfig, TrainConfig, WorkersConfig
from ray_jobs.core.run_dir import BEST_CHECKPOINT_FILE, LATEST_CHECKPOINT_FILE, resolve_checkpoint
from ray_jobs.training.job import train

ROWS = 1_999


def _flipped_validation(source, out):
    spec = DatasetSpec.load(source)
    shutil.copytree(source / "train", out / "train")
    shutil.copy(source / "spec.json", out / "spec.json")
    rows = pads.dataset(str(source / "train")).to_table().slice(0, ROWS)
    flipped = rows
    for task in spec.tasks:
        column = rows[task]
        flipped = flipped.set_column(flipped.schema.get_field_index(task), task,
                                     pc.subtract(pc.cast(1, column.type), column))
    for split, table in (("valid", flipped), ("test", rows)):
        (out / split).mkdir()
        pq.write_table(table, out / split / "part-00000.parquet")
    return out


def test_test_split_is_scored_with_the_best_validation_epoch(ray_session, uneven_data, tmp_path, capfd):
    data = _flipped_validation(uneven_data, tmp_path / "data")
    config = JobConfig(
        name="best",
        data=DataConfig(path=str(data), generate=None, batch_size=256),
        model=ModelConfig(arch="sharedbottom"),
        train=TrainConfig(epochs=4, patience=1, log_every=10**6),
        workers=WorkersConfig(num_workers=1),
        runs_dir=str(tmp_path / "runs"),
    )
    run_dir = train(config, run_name="best")
    out = capfd.readouterr().out
    summary = json.loads((run_dir / "metrics.json").read_text())["summary"]
    assert summary["select_metric"] == "val_mean_task_gauc"
    assert summary["best_epoch"] == 1 and summary["epoch"] == 2, out[-3000:]
    # metrics.json's test figures come from epoch 1's model: they mirror its validation figures
    np.testing.assert_allclose(summary["val_mean_task_gauc"] + summary["test_mean_task_gauc"], 1.0, atol=1e-9)
    for task in DatasetSpec.load(data).tasks:
        if not np.isnan(summary[f"test_auc/{task}"]):
            np.testing.assert_allclose(summary[f"val_auc/{task}"] + summary[f"test_auc/{task}"], 1.0, atol=1e-9)
    # the run directory points evaluate at the chosen checkpoint; the last model is kept apart
    best = (run_dir / BEST_CHECKPOINT_FILE).read_text().strip()
    assert best == summary["best_checkpoint"] and str(resolve_checkpoint(run_dir)[1]) == best
    assert (run_dir / LATEST_CHECKPOINT_FILE).read_text().strip() != best
