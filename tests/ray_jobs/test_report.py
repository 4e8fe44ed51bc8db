"""Report rendering: the text table shows every cell, heatmaps are valid PNGs of the right data."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from ray_jobs.core import tables
from ray_jobs.reports import plots as report
from ray_jobs.evaluation.metrics import ALL_DOMAINS, cell_metrics

TASKS, DOMAINS = ("click", "like", "share"), ("feed", "search", "mall")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _frame(seed: int, n: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    domain = rng.choice(3, size=n, p=[0.7, 0.25, 0.05])
    probs = rng.random((n, len(TASKS)))
    labels = (rng.random((n, len(TASKS))) < probs * np.array([0.8, 0.3, 0.02])).astype(int)
    return cell_metrics(probs, labels, domain, rng.integers(0, 50, size=n), TASKS, DOMAINS)


@pytest.fixture(autouse=True)
def no_leaked_figures():
    yield
    assert plt.get_fignums() == []


def test_table_lists_every_cell_with_its_values():
    df = _frame(0)
    df.loc[0, "gauc"] = np.nan
    text = tables.cells_table(df)
    lines = text.rstrip("\n").split("\n")
    assert len(lines) == len(df) + 2
    assert len({len(line) for line in lines}) == 1  # fixed width
    for line, row in zip(lines[2:], df.itertuples()):
        fields = line.split()
        assert fields[:4] == [row.domain, row.task, str(row.n), str(row.positives)]
        expected = [tables.MISSING if np.isnan(v) else f"{v:.4f}" for v in (row.auc, row.gauc, row.logloss)]
        assert fields[4:] == expected
    only_auc = tables.cells_table(df, metrics=("auc",))
    assert "logloss" not in only_auc and f"{df.loc[1, 'auc']:.4f}" in only_auc


def test_cell_matrix_puts_domains_on_rows_and_tasks_on_columns():
    df = _frame(1)
    matrix = report.cell_matrix(df, "auc")
    assert list(matrix.index) == [*DOMAINS, ALL_DOMAINS] and list(matrix.columns) == list(TASKS)
    for row in df.itertuples():
        assert matrix.loc[row.domain, row.task] == row.auc or (np.isnan(row.auc) and np.isnan(matrix.loc[row.domain, row.task]))


def test_gain_matrix_sign_follows_metric_direction():
    model, base = _frame(2), _frame(3)
    auc_gain = report.gain_matrix(model, base, "auc")
    loss_gain = report.gain_matrix(model, base, "logloss")
    m, b = model.iloc[0], base.iloc[0]
    assert auc_gain.loc[m.domain, m.task] == pytest.approx(m.auc - b.auc)
    assert loss_gain.loc[m.domain, m.task] == pytest.approx(b.logloss - m.logloss)
    partial = base[base["domain"] != "mall"]
    assert report.gain_matrix(model, partial, "auc").loc["mall"].isna().all()
    with pytest.raises(ValueError):
        report.gain_matrix(model, base, "n")


def _read_png(path):
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = plt.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    return image


def test_heatmaps_are_valid_pngs_that_depend_on_the_data(tmp_path):
    a = _read_png(report.heatmap(_frame(4), "auc", tmp_path / "a.png", title="AUC"))
    b = _read_png(report.heatmap(_frame(5), "auc", tmp_path / "sub" / "b.png"))
    assert a.shape == b.shape and not np.array_equal(a, b)
    _read_png(report.heatmap(_frame(4), "logloss", tmp_path / "loss.png"))


def test_gain_heatmap_writes_png_including_zero_gain(tmp_path):
    model, base = _frame(6), _frame(7)
    gain = _read_png(report.gain_heatmap(model, base, "gauc", tmp_path / "gain.png"))
    zero = _read_png(report.gain_heatmap(model, model, "gauc", tmp_path / "zero.png"))
    assert not np.array_equal(gain, zero)


def test_pooled_task_summary_matches_sklearn_over_seeds_and_drops_rare_tasks():
    from sklearn.metrics import roc_auc_score

    from ray_jobs.reports.comparison import measurable_tasks, pooled_task_summary

    frames, reference = [], {}
    for label, offset in (("a", 0), ("b", 10)):
        for seed in (0, 1, 2):
            rng = np.random.default_rng(offset + seed)
            n = 3000
            domain = rng.choice(3, size=n, p=[0.7, 0.25, 0.05])
            probs = rng.random((n, len(TASKS)))
            labels = (rng.random((n, len(TASKS))) < probs * np.array([0.8, 0.3, 0.004])).astype(int)
            frames.append(cell_metrics(probs, labels, domain, rng.integers(0, 50, size=n), TASKS, DOMAINS)
                          .assign(model=label, seed=seed))
            reference[label, seed] = [roc_auc_score(labels[:, t], probs[:, t]) for t in range(len(TASKS))]
    results = pd.concat(frames, ignore_index=True)
    assert measurable_tasks(results) == ["click", "like"]  # share: about 6 positives in 3,000 rows
    table = pooled_task_summary(results, ["click", "like"]).set_index("model")
    for label in ("a", "b"):
        every = np.array([np.mean(reference[label, s]) for s in range(3)])
        two = np.array([np.mean(reference[label, s][:2]) for s in range(3)])
        assert table.loc[label, "all_tasks_mean"] == pytest.approx(every.mean())
        assert table.loc[label, "all_tasks_std"] == pytest.approx(every.std(ddof=1))
        assert table.loc[label, "measurable_mean"] == pytest.approx(two.mean())
        assert table.loc[label, "auc/share"] == pytest.approx(np.mean([reference[label, s][2] for s in range(3)]))
