"""The compare job: model syntax, and on tiny data a report whose gains and oracle numbers match
values recomputed independently from the runs' metrics.json and the test Parquet files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pytest
from sklearn.metrics import roc_auc_score

from modules.spec import DatasetSpec
from modules.strict import ConfigError
from ray_jobs.compare import main as compare_main
from ray_jobs.experiments import compare
from ray_jobs.reports.comparison import RESULT_COLUMNS
from ray_jobs.compare import parse_request as parse_args
from ray_jobs.experiments.compare import ModelEntry, parse_models, with_params
from ray_jobs.core.config import DataConfig, JobConfig, TrainConfig, WorkersConfig
from ray_jobs.core.run_dir import PREDICTIONS_FILE
from ray_jobs.evaluation.predictions import Predictions

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MODELS = ("sharedbottom", "single_task")  # single_task: the conflict buckets' reference
TASKS = ("click", "like", "follow", "share")


def test_models_syntax_names_labels_and_json_with_commas():
    entries = parse_models('pepnet, sharedbottom,epnet_only=pepnet{"use_ppnet": false, "gamma": 1.5}')
    assert entries == [ModelEntry("pepnet", "pepnet", {}), ModelEntry("sharedbottom", "sharedbottom", {}),
                       ModelEntry("epnet_only", "pepnet", {"use_ppnet": False, "gamma": 1.5})]


@pytest.mark.parametrize("text, message", [
    ("pepnet,nosuchmodel", "unknown model"),
    ('pepnet{"no_such_param": 1}', "no_such_param"),
    ('v=pepnet{"use_ppnet": fals}', "valid JSON"),
    ("pepnet,pepnet", "duplicate"),
    ("", "no model"),
])
def test_models_syntax_errors_fail_before_training(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_models(text)


def test_params_option_merges_into_the_labelled_entry():
    request = parse_args(
        ["--models", 'mmoe,big=mmoe{"num_experts": 8}', "--params-big", '{"tower": [32]}',
         "--params-mmoe={\"num_experts\": 2}", "--seeds", "3,4", "--epochs", "5", "--out", "reports/x",
         "--conflict-tasks", "click,like"])
    assert request.entries == [ModelEntry("mmoe", "mmoe", {"num_experts": 2}),
                               ModelEntry("big", "mmoe", {"num_experts": 8, "tower": [32]})]
    assert request.seeds == [3, 4] and request.base.train.epochs == 5 and request.out.name == "x"
    assert request.baseline == "sharedbottom" and request.conflict_tasks == ("click", "like")
    assert request.runs_prefix is None
    assert parse_args(["--models", "mmoe", "--runs-prefix", "all_on", "--baseline", "mmoe"]).runs_prefix == "all_on"
    with pytest.raises(ConfigError, match="no model labelled"):
        with_params(request.entries, {"ple": {}})
    with pytest.raises(ConfigError, match="two different task names"):
        parse_args(["--models", "mmoe", "--conflict-tasks", "click"])


def test_a_tuned_entry_takes_model_and_optimiser_from_best_config_and_the_budget_from_the_base(tmp_path):
    from dataclasses import replace

    from ray_jobs.core.config import ModelConfig, dump_config
    from sharding.optim import OptimConfig

    searched = JobConfig(name="searched", model=ModelConfig(arch="pepnet", params={"gamma": 2.5, "tower": [100, 64]}),
                         train=TrainConfig(epochs=9, optim=OptimConfig(sparse_lr=0.17, dense_lr=0.002)),
                         data=DataConfig(batch_size=64))
    (tmp_path / "best_config.yaml").write_text(dump_config(searched))
    entries = parse_models(f"sharedbottom,pepnet_tuned=@{tmp_path / 'best_config.yaml'}")
    base = JobConfig(train=TrainConfig(epochs=3), data=DataConfig(batch_size=256))
    tuned = compare.job_for(base, entries[1], seed=4)
    assert tuned.model == searched.model and tuned.train.optim == searched.train.optim
    assert tuned == replace(base, model=searched.model, train=replace(base.train, seed=4, optim=searched.train.optim))
    assert compare.job_for(base, entries[0], seed=4).train.optim == base.train.optim  # untouched
    with pytest.raises(ConfigError, match="no such file"):
        parse_models(f"x=@{tmp_path / 'missing.yaml'}")


def test_cli_rejects_a_typo_with_exit_code_2(capsys):
    assert compare_main(["--models", "sharedbotom"]) == 2
    assert "unknown model" in capsys.readouterr().err


@pytest.fixture(scope="module")
def compared(ray_session, tiny_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    base = JobConfig(name="cmp", data=DataConfig(path=str(tiny_data), generate=None, batch_size=256),
                     train=TrainConfig(epochs=1, log_every=1000), workers=WorkersConfig(num_workers=1),
                     runs_dir=str(root / "runs"))
    entries = [ModelEntry(m, m) for m in MODELS]
    out = compare.compare(compare.CompareRequest(base, entries, seeds=[0], out=root / "report", bootstrap=50,
                                                 conflict_tasks=("click", "like")))
    return base, entries, out


def _run_cells(base: JobConfig, out, label: str) -> pd.DataFrame:
    """A run's cells straight from its metrics.json, found by the documented run-name scheme."""
    run_dir = f"{base.runs_dir}/{out.name}-{label}-s0"
    return pd.DataFrame(json.loads(open(f"{run_dir}/metrics.json").read())["cells"])


def test_report_files_are_written(compared):
    _, _, out = compared
    for name in ("report.md", "results.csv", "summary.csv", "gains.csv", "oracle.csv", "runs.csv",
                 "intervals.csv", "cell_intervals.csv", "conflict.csv"):
        assert (out / name).stat().st_size > 0, name
    pngs = [f"{m}_{k}.png" for m in MODELS for k in ("auc", "gauc")] + \
           ["gain_single_task_auc.png", "gain_single_task_gauc.png", "oracle_auc.png", "oracle_gauc.png", "conflict.png"]
    for name in pngs:
        assert (out / "heatmaps" / name).read_bytes()[:8] == PNG_SIGNATURE, name
    results = pd.read_csv(out / "results.csv")
    assert tuple(results.columns) == RESULT_COLUMNS
    assert len(results) == len(MODELS) * (3 * 4 + 4)  # 3 domains x 4 tasks + 4 per-task "all" rows
    text = (out / "report.md").read_text()
    assert all(f"## {m}: per cell" in text for m in MODELS)
    assert "## Conflict analysis" in text and "95% CI (test users)" in text


def test_results_and_summary_match_the_runs(compared):
    base, _, out = compared
    results = pd.read_csv(out / "results.csv", keep_default_na=True)
    summary = pd.read_csv(out / "summary.csv").set_index("model")
    for label in MODELS:
        cells = _run_cells(base, out, label)
        mine = results[results["model"] == label].reset_index(drop=True)
        np.testing.assert_allclose(mine["auc"].to_numpy(float), cells["auc"].to_numpy(float), rtol=1e-9)
        np.testing.assert_allclose(mine["gauc"].to_numpy(float), cells["gauc"].to_numpy(float), rtol=1e-9)
        domain_task = cells[cells["domain"] != "all"]
        assert summary.loc[label, "mean_gauc"] == pytest.approx(np.nanmean(domain_task["gauc"].to_numpy(float)))


def test_gains_equal_model_minus_sharedbottom_per_cell(compared):
    base, _, out = compared
    gains = pd.read_csv(out / "gains.csv")
    assert set(gains["model"]) == {"single_task"}
    model = _run_cells(base, out, "single_task").set_index(["domain", "task"])
    baseline = _run_cells(base, out, "sharedbottom").set_index(["domain", "task"])
    checked = 0
    for metric in ("auc", "gauc"):
        rows = gains[(gains["metric"] == metric) & (gains["model"] == "single_task")].set_index(["domain", "task"])["gain"]
        assert len(rows) == 12 and "all" not in rows.index.get_level_values(0)
        for key, gain in rows.items():
            expected = model.loc[key, metric] - baseline.loc[key, metric]
            if np.isnan(expected):
                assert np.isnan(gain), key
            else:
                assert gain == pytest.approx(expected, abs=1e-12), key
                checked += 1
    assert checked >= 20  # most cells have both classes even on tiny data
    assert not (gains[gains["model"] == "single_task"]["gain"].dropna() == 0).all(), "two different models do not tie on every cell"


def test_oracle_auc_equals_sklearn_on_the_prob_column(compared, tiny_data):
    _, _, out = compared
    test = pads.dataset(str(tiny_data / "test")).to_table(columns=["domain", "click", "prob_click"]).to_pandas()
    search = test[test["domain"] == 1]  # "search" is domain 1 in the generator
    expected = roc_auc_score(search["click"], search["prob_click"])
    oracle = pd.read_csv(out / "oracle.csv").set_index(["domain", "task"])
    assert oracle.loc[("search", "click"), "auc"] == pytest.approx(expected, abs=1e-9)
    per_cell_rows = [line.split("|") for line in (out / "report.md").read_text().splitlines()
                     if line.startswith("| search | click |") and len(line.split("|")) == 13]
    assert len(per_cell_rows) == len(MODELS)  # one per-cell table per model, oracle columns last
    assert all(row[-4].strip() == f"{expected:.4f}" for row in per_cell_rows)


def test_reuse_keeps_finished_runs(compared):
    base, entries, out = compared
    metrics = [f"{base.runs_dir}/{out.name}-{e.label}-s0/metrics.json" for e in entries]
    before = [os.stat(p).st_mtime_ns for p in metrics]
    records = compare.train_all(base, entries, [0], prefix=out.name, reuse=True)
    after = [os.stat(p).st_mtime_ns for p in metrics]
    assert before == after and [r.label for r in records] == list(MODELS)


def test_runs_prefix_reports_the_same_runs_against_another_baseline(compared, monkeypatch):
    """A second report (another --out, baseline single_task) over the first one's runs: nothing
    retrains (nor starts Ray), and every per-cell gain is the first report's with its sign flipped."""
    from ray_jobs.training import runtime

    base, entries, out = compared
    monkeypatch.setattr(runtime, "init_ray", lambda config: pytest.fail("Ray started with every run reusable"))
    metrics = [f"{base.runs_dir}/{out.name}-{e.label}-s0/metrics.json" for e in entries]
    before = [os.stat(p).st_mtime_ns for p in metrics]
    other = compare.compare(compare.CompareRequest(base, entries, seeds=[0], out=out.parent / "report-vs-single",
                                                   baseline="single_task", reuse=True, bootstrap=20,
                                                   runs_prefix=out.name))
    assert [os.stat(p).st_mtime_ns for p in metrics] == before
    assert sorted(p.name for p in Path(base.runs_dir).iterdir()) == sorted(f"{out.name}-{m}-s0" for m in MODELS)
    first = pd.read_csv(out / "gains.csv").set_index(["domain", "task", "metric"])["gain"]
    second = pd.read_csv(other / "gains.csv")
    assert set(second["model"]) == {"sharedbottom"}
    second = second.set_index(["domain", "task", "metric"])["gain"]
    np.testing.assert_allclose(second.loc[first.index].to_numpy(float), -first.to_numpy(float), atol=1e-12)


def test_conflict_buckets_of_the_report_match_sklearn(compared):
    """The report's conflict table, recomputed from the saved predictions with sklearn."""
    base, _, out = compared
    ref = Predictions.load(f"{base.runs_dir}/{out.name}-single_task-s0/{PREDICTIONS_FILE}", TASKS)
    model = Predictions.load(f"{base.runs_dir}/{out.name}-sharedbottom-s0/{PREDICTIONS_FILE}", TASKS)
    click, like = TASKS.index("click"), TASKS.index("like")
    ratio = pd.Series(np.log(ref.probs[:, click].astype(np.float64)) - np.log(ref.probs[:, like].astype(np.float64)),
                      index=ref.sample_id).sort_index()
    top = (ratio.rank(method="first") - 1) * 10 // len(ratio) >= 7  # buckets 8-10 of 10: A-overwhelming
    ids = set(ratio.index[top])
    rows = np.array([i in ids for i in model.sample_id])
    expected = roc_auc_score(model.labels[rows, like], model.probs[rows, like])
    table = pd.read_csv(out / "conflict.csv")
    got = table[(table["model"] == "sharedbottom") & (table["task"] == "like") & (table["subset"] == "A-overwhelming")
                & (table["bucket"] == 0)]["auc"].item()
    assert got == pytest.approx(expected, abs=1e-9)
    assert sorted(table[(table["bucket"] > 0) & (table["model"] == "sharedbottom") & (table["task"] == "like")]["n"]) \
        == [len(ratio) // 10] * (10 - len(ratio) % 10) + [len(ratio) // 10 + 1] * (len(ratio) % 10)


def test_intervals_bracket_the_point_estimates(compared):
    _, _, out = compared
    summary = pd.read_csv(out / "summary.csv").set_index("model")
    intervals = pd.read_csv(out / "intervals.csv").set_index(["model", "metric"])
    for label in MODELS:
        for metric in ("auc", "gauc"):
            low, high = intervals.loc[(label, metric), ["low", "high"]]
            assert low < summary.loc[label, f"mean_{metric}"] < high and high - low < 0.2
    assert np.isnan(intervals.loc[("sharedbottom", "gauc"), "gain_low"])
    assert intervals.loc[("single_task", "gauc"), "gain_low"] < intervals.loc[("single_task", "gauc"), "gain_high"]


def test_conflict_buckets_by_the_true_probabilities(compared, tiny_data):
    """--conflict-reference oracle: buckets from prob_<task> of the test files, joined by sample_id."""
    base, entries, out = compared
    runs = pd.read_csv(out / "runs.csv")
    records = [compare.RunRecord(r.model, r.arch, r.seed, r.run_dir) for r in runs.itertuples()]
    spec = DatasetSpec.load(tiny_data)
    request = compare.CompareRequest(base, entries, [0], out, bootstrap=0, conflict_tasks=("click", "like"),
                                     conflict_reference="oracle")
    table = compare.analyse(records, spec, request, tiny_data).conflict
    test = pads.dataset(str(tiny_data / "test")).to_table().to_pandas().sort_values("sample_id")
    ratio = np.log(test["prob_click"].to_numpy(np.float64)) - np.log(test["prob_like"].to_numpy(np.float64))
    rank = np.argsort(np.argsort(ratio, kind="stable"), kind="stable")
    rows = rank * 10 // len(ratio) == 0  # bucket 1: like overwhelms click
    got = table[(table["model"] == "oracle") & (table["task"] == "like") & (table["bucket"] == 1)]["auc"].item()
    assert got == pytest.approx(roc_auc_score(test["like"].to_numpy()[rows], test["prob_like"].to_numpy()[rows]), abs=1e-9)
    assert set(table["model"]) == {*MODELS, "oracle"}
