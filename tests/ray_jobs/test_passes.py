"""Pass-by-pass training on Ray, 2 workers: bounded memory, progressive validation, resume.

Three tiny runs share the session's Ray (each start-up and each pass costs seconds, so the
stream has 2 days; tests/ray_jobs/test_pass_quality.py checks the same bounds over 6 passes
without Ray): 2 passes uninterrupted; 1 pass, then a rerun with the same run name, which must
resume at pass 2 and end exactly where the uninterrupted run did.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from modules.collision import BoundedFeature
from ray_jobs.core.config import DataConfig, JobConfig, ModelConfig, TrainConfig
from ray_jobs.data.drift import PRESETS, generate
from ray_jobs.training.passes import day_partitions, run_passes
from ray_jobs.train import main

STREAM = replace(PRESETS["tiny"], days=2, rows_per_day=800)
DAYS = STREAM.days


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    return generate(STREAM, tmp_path_factory.mktemp("drift") / "tiny")


def _distinct_items(stream) -> int:
    return len(set().union(*(pq.read_table(stream / day, columns=["item_id"]).column("item_id").to_pylist()
                             for day in day_partitions(stream))))


@pytest.fixture(scope="module")
def runs(ray_session, stream, tmp_path_factory):
    rows = _distinct_items(stream) // 10  # 10x more distinct ids than rows
    config = JobConfig(
        name="passes",
        data=DataConfig(path=str(stream), generate=None, batch_size=200),
        model=ModelConfig(arch="sharedbottom"),
        train=TrainConfig(log_every=10**6, keep_checkpoints=DAYS),
        runs_dir=str(tmp_path_factory.mktemp("runs")),
        collision=(BoundedFeature("item_id", rows=rows, policy="feature_score", admission_threshold=2),
                   BoundedFeature("author_id", rows=32, policy="lru")),
    )
    full = run_passes(config, stream, run_name="full")
    run_passes(config, stream, run_name="resumed", max_passes=1)
    resumed = run_passes(config, stream, run_name="resumed")
    return config, full, resumed


def _table(run_dir) -> pd.DataFrame:
    return pd.read_csv(run_dir / "passes.csv")


def test_rows_in_use_never_exceed_the_cap_and_checkpoints_stay_flat(runs, stream):
    config, full, _ = runs
    table = _table(full)
    assert list(table["pass"]) == list(range(1, DAYS + 1))
    for feature in config.collision:
        key = feature.key
        assert (table[f"rows/{key}"] == feature.rows).all()
        assert (table[f"rows_in_use/{key}"] <= feature.rows - 1).all()
    assert _distinct_items(stream) >= 10 * config.collision[0].rows
    assert table["rows_in_use/item_id"].iloc[-1] == config.collision[0].rows - 1  # the cap binds
    assert table["evictions/item_id"].is_monotonic_increasing and table["evictions/item_id"].iloc[-1] > 0
    assert table["admission_rejections/item_id"].iloc[-1] > 0
    assert table["evictions/author_id"].iloc[-1] > 0  # authors overflow their 32 rows too
    sizes = table["checkpoint_mb"]
    assert sizes.notna().all()
    assert sizes.max() - sizes.min() < 1e-3 * sizes.min(), f"checkpoint grows across passes: {list(sizes)}"


def test_each_day_is_scored_by_all_workers_before_training_on_it(runs, stream):
    _, full, _ = runs
    table = _table(full)
    assert np.isnan(table["next_day_mean_auc"].iloc[0])  # day 1: nothing trained yet
    assert table["next_day_mean_auc"].iloc[1:].between(0, 1).all()
    cells = pd.read_csv(full / "pass_cells.csv")
    spec_tasks = STREAM.tasks
    for p, day in enumerate(day_partitions(stream)[1:], start=2):
        data = pq.read_table(stream / day).to_pandas()
        scored = cells[cells["pass"] == p]
        for d, domain in enumerate(STREAM.domains):
            rows = data[data["domain"] == d]
            for task in spec_tasks:
                cell = scored[(scored["domain"] == domain) & (scored["task"] == task)].iloc[0]
                # every row of that day, from both workers' shards, none dropped or padded in
                assert cell["n"] == len(rows) and cell["positives"] == rows[task].sum(), (p, domain, task)
    assert table["train_rows"].between(0.9 * STREAM.rows_per_day, STREAM.rows_per_day).all()
    report = (full / "passes.md").read_text()
    assert "| pass | day | next_day_mean_auc |" in report and f"## Pass {DAYS} (day-{DAYS - 1:03d})" in report


def test_resuming_after_pass_one_equals_the_uninterrupted_run(runs):
    _, full, resumed = runs
    a, b = _table(full), _table(resumed)
    measured = [c for c in a.columns if c not in ("seconds", "checkpoint_mb")]
    pd.testing.assert_frame_equal(a[measured], b[measured], check_exact=True)
    cells_a, cells_b = pd.read_csv(full / "pass_cells.csv"), pd.read_csv(resumed / "pass_cells.csv")
    pd.testing.assert_frame_equal(cells_a, cells_b, check_exact=True)


def test_cli_refuses_bounded_features_without_passes(tmp_path, stream, capsys):
    job = tmp_path / "job.yaml"
    job.write_text(json.dumps({"data": {"path": str(stream), "generate": None},
                               "collision": [{"key": "item_id", "rows": 16}]}))
    assert main(["--config", str(job)]) == 2
    assert "use --passes" in capsys.readouterr().err
    assert main(["--config", str(job), "--passes", str(tmp_path / "missing")]) == 2
    assert "passes directory not found" in capsys.readouterr().err
    gpu = tmp_path / "gpu.yaml"
    gpu.write_text(json.dumps({**json.loads(job.read_text()), "workers": {"use_gpu": True}}))
    assert main(["--config", str(gpu), "--passes", str(stream)]) == 2
    assert "not wired" in capsys.readouterr().err

