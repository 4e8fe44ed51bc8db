"""The train job on 2 workers learns, and evaluate reproduces its numbers from the checkpoint
(`trained_run`: tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import pytest
from sklearn.metrics import roc_auc_score

from modules.spec import DatasetSpec
from ray_jobs.training.scoring import score_checkpoint as evaluate
from ray_jobs.core.run_dir import PREDICTIONS_FILE
from ray_jobs.evaluation.predictions import Predictions
from ray_jobs.core.run_dir import TENSORBOARD_DIR
from ray_jobs.training.curves import read_scalars


def test_train_learns_and_writes_run_dir(trained_run):
    """2 workers, test split of odd length (1,999 rows): every row is scored once."""
    config, run_dir = trained_run
    tiny_data = Path(config.data.path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    cells = {(c["domain"], c["task"]): c for c in metrics["cells"]}
    test_rows = pads.dataset(str(tiny_data / "test")).count_rows()
    assert test_rows % config.workers.num_workers == 1
    # metrics come from all workers' predictions, not rank 0's shard only
    assert cells[("all", "click")]["n"] == test_rows
    assert sum(cells[(d, "click")]["n"] for d in ("feed", "search", "mall")) == test_rows
    assert cells[("all", "click")]["auc"] > 0.6, "click carries a strong signal in the generator"
    # oracle: the generator's true probabilities beat the trained model on every task
    test = pads.dataset(str(tiny_data / "test")).to_table()
    for task in ("click", "like"):
        oracle = roc_auc_score(test[task].to_numpy(), test[f"prob_{task}"].to_numpy())
        assert oracle > cells[("all", task)]["auc"]
    assert (run_dir / "job.yaml").exists() and (run_dir / "latest_checkpoint").exists()
    summary = metrics["summary"]
    assert 1 <= summary["best_epoch"] <= summary["epoch"] == config.train.epochs
    assert summary["select_metric"] == "val_mean_task_gauc"
    assert (run_dir / "best_checkpoint").read_text().strip() == summary["best_checkpoint"]
    # where the time went (core.timeline): the driver's and rank 0's moments, in the order they happen
    timeline = metrics["timeline"]
    order = ["driver_process_started", "train_called", "ray_ready", "datasets_ready", "worker_loop_started",
             "model_sharded", "first_epoch_done", "training_done", "test_scored", "fit_returned", "results_fetched"]
    # (a worker process may be one Ray started earlier, idle until the worker group took it)
    assert timeline.pop("worker_process_started") <= timeline["worker_loop_started"]
    assert list(timeline) == order and timeline["driver_process_started"] == 0.0
    # where each epoch's wall time went on rank 0 (training.epoch.EpochTime), inside the timeline's training span
    epochs = metrics["epochs"]
    assert [e["epoch"] for e in epochs] == list(range(1, config.train.epochs + 1))
    for e in epochs:
        parts = e["train_compute_s"] + e["train_input_wait_s"] + e["eval_total_s"] + e["checkpoint_s"]
        assert e["train_compute_s"] > 0 and 0 < e["eval_forward_s"] <= e["eval_total_s"] and parts <= e["wall_s"] + 4e-3
        assert e["overhead_s"] == pytest.approx(e["wall_s"] - e["train_compute_s"] - e["eval_forward_s"], abs=3e-3)
    assert sum(e["wall_s"] for e in epochs) <= timeline["training_done"] - timeline["model_sharded"] + 0.02
    # the saved test predictions: every test row once, by id, and they give metrics.json's numbers
    spec = DatasetSpec.load(tiny_data)
    predictions = Predictions.load(run_dir / PREDICTIONS_FILE, spec.tasks)
    np.testing.assert_array_equal(np.sort(predictions.sample_id), np.sort(test[spec.id_column].to_numpy()))
    click = spec.tasks.index("click")
    by_id = dict(zip(test[spec.id_column].to_pylist(), test["click"].to_pylist()))
    assert [by_id[i] for i in predictions.sample_id[:200].tolist()] == predictions.labels[:200, click].tolist()
    np.testing.assert_allclose(roc_auc_score(predictions.labels[:, click], predictions.probs[:, click]),
                               cells[("all", "click")]["auc"], rtol=1e-9)


def test_tensorboard_curves_hold_each_epochs_validation_and_the_training_window(trained_run):
    """Rank 0 alone writes `<run dir>/tensorboard/`: one event file for an uninterrupted 2-worker
    run; its validation scalars of the best epoch are metrics.json's (float32 in the file), and the
    windowed training NE / calibration are there every `train.log_every` steps for every task."""
    config, run_dir = trained_run
    files = list((run_dir / TENSORBOARD_DIR).glob("events.out.tfevents.*"))
    assert len(files) == 1, files
    scalars = read_scalars(run_dir / TENSORBOARD_DIR)
    summary = json.loads((run_dir / "metrics.json").read_text())["summary"]
    spec = DatasetSpec.load(Path(config.data.path))
    epochs = [int(v) for _, v in scalars["epoch"]]
    assert epochs == list(range(1, config.train.epochs + 1))
    best = epochs.index(summary["best_epoch"])
    for key in ["val_mean_auc", "val_mean_logloss", *(f"val_auc/{t}" for t in spec.tasks)]:
        values = scalars[f"val/{key[len('val_'):]}"]
        assert len(values) == config.train.epochs, key
        np.testing.assert_allclose(values[best][1], summary[key], rtol=1e-6, err_msg=key)
    every = config.train.log_every
    for task in spec.tasks:
        ne, cal = scalars[f"train/ne/{task}"], scalars[f"train/calibration/{task}"]
        steps = [s for s, _ in ne]  # every log_every steps of an epoch, and at each epoch's end
        assert steps[0] == every and steps == sorted(set(steps)) and len(steps) >= config.train.epochs
        assert all(0 < v < 10 for _, v in ne) and all(v > 0 for _, v in cal), (task, ne, cal)
        # the epoch's report (metrics.json) holds the window at the end of the epoch: the last point of it
        epoch_end = scalars["epoch"][best][0]
        at_end = [v for s, v in ne if s == epoch_end]
        np.testing.assert_allclose(at_end, [summary[f"train_window_ne/{task}"]], rtol=1e-6)


def test_evaluate_reproduces_on_another_worker_count(trained_run):
    """The 2-worker run's test metrics (odd test split, best epoch's model) on 1 worker."""
    config, run_dir = trained_run
    trained = json.loads((run_dir / "metrics.json").read_text())["summary"]
    metrics, cells = evaluate(run_dir, num_workers=1)
    assert metrics["world_size"] == 1
    np.testing.assert_allclose(metrics["test_mean_auc"], trained["test_mean_auc"], rtol=1e-6)
    np.testing.assert_allclose(metrics["test_mean_gauc"], trained["test_mean_gauc"], rtol=1e-6)
    np.testing.assert_allclose(metrics["test_mean_logloss"], trained["test_mean_logloss"], rtol=1e-6)
    np.testing.assert_allclose(cells["n"].to_numpy(), [c["n"] for c in json.loads(
        (run_dir / "metrics.json").read_text())["cells"]])
    assert len(cells) == 16
