"""The second worked example of docs/data.md end to end: a headerless census-style CSV with
string labels, no dates and no user ids -> recipes/census.yaml -> prepare -> a 1-worker train,
with no pre-processing script. `group: null`: GAUC is absent everywhere (None, '-'), never NaN."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from modules.spec import DatasetSpec
from ray_jobs.data.raw_files import CENSUS_COLUMNS, write_census
from ray_jobs.evaluation.metrics import cell_metrics, summary
from ray_jobs.evaluation.predictions import Predictions
from ray_jobs.core.run_dir import PREDICTIONS_FILE

CENSUS = Path(__file__).resolve().parents[2] / "recipes" / "census.yaml"


def _no_nan(text: str) -> dict:
    """json.loads that fails on NaN/Infinity (Python writes them as bare, non-JSON tokens)."""
    def refuse(token: str) -> None:
        raise AssertionError(f"metrics.json holds {token}")
    return json.loads(text, parse_constant=refuse)


def test_metrics_without_groups_report_gauc_as_absent():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (200, 2))
    probs = np.clip(labels * 0.3 + rng.random((200, 2)) * 0.7, 0, 1)
    domain = rng.integers(0, 2, 200)
    df = cell_metrics(probs, labels, domain, None, ("a", "b"), ("x", "y"))
    assert df["gauc"].isna().all() and all(v is None for v in df["gauc"])
    out = summary(df)
    assert out["mean_gauc"] is None and out["gauc/a"] is None
    assert out["auc/a"] == pytest.approx(roc_auc_score(labels[:, 0], probs[:, 0]))
    assert out["mean_auc"] == pytest.approx(np.mean([roc_auc_score(labels[domain == d, t], probs[domain == d, t])
                                                     for d in (0, 1) for t in (0, 1)]))


def test_census_example_raw_file_to_trained_model(ray_session, tmp_path, capsys):
    from ray_jobs.core.config import DataConfig, JobConfig, ModelConfig, TrainConfig, WorkersConfig
    from ray_jobs.prepare import main as prepare_main
    from ray_jobs.training.job import train

    raw = write_census(tmp_path / "raw" / "census.data", rows=3000, seed=1)
    out = tmp_path / "census"
    assert prepare_main([str(CENSUS), "--out", str(out), "--raw-dir", str(raw.parent)]) == 0
    spec = DatasetSpec.load(out)
    assert spec.tasks == ("high_income", "long_hours") and spec.group_column is None
    assert spec.domains == ("private", "self_employed", "government", "other")

    # the prepared labels are the raw strings / numbers, row by row (sample_id = line in the file)
    frame = pd.read_csv(raw, header=None, names=list(CENSUS_COLUMNS), skipinitialspace=True, na_values=["?"])
    test = pd.read_parquet(out / "test")
    source = frame.iloc[test.sample_id.to_numpy()]
    assert (test.high_income.to_numpy() == (source.income == ">50K").to_numpy()).all()
    assert (test.long_hours.to_numpy() == (source.hours_per_week >= 45).to_numpy()).all()

    config = JobConfig(name="census", data=DataConfig(path=str(out), generate=None, batch_size=128),
                       model=ModelConfig(arch="mmoe"), train=TrainConfig(epochs=1, log_every=1000),
                       workers=WorkersConfig(num_workers=1), runs_dir=str(tmp_path / "runs"))
    capsys.readouterr()
    run_dir = train(config, "census")
    console = capsys.readouterr().out
    assert "nan" not in console.lower() and "mean GAUC -" in console

    metrics = _no_nan((run_dir / "metrics.json").read_text())
    assert metrics["summary"]["test_mean_gauc"] is None and metrics["summary"]["val_mean_gauc"] is None
    assert all(cell["gauc"] is None for cell in metrics["cells"])
    predictions = Predictions.load(run_dir / PREDICTIONS_FILE, spec.tasks)
    high = spec.tasks.index("high_income")
    auc = roc_auc_score(predictions.labels[:, high], predictions.probs[:, high])
    assert metrics["summary"]["test_auc/high_income"] == pytest.approx(auc, rel=1e-9)
    assert auc > 0.65, "income follows education, occupation and marital status in the generator"
