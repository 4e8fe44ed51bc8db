"""Metrics against independent references: sklearn for AUC/logloss, a pandas groupby for GAUC."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from ray_jobs.evaluation import metrics
from ray_jobs.evaluation.metrics import ALL_DOMAINS, cell_metrics, resampled_cells, user_resamples


def _data(n: int = 3000, seed: int = 0, num_groups: int = 150):
    """Labels correlated with scores; scores rounded so ties are frequent; some single-class groups."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, num_groups, size=n) * 7 - 300  # non-contiguous, negative ids too
    scores = np.round(rng.random(n), 1)
    labels = (rng.random(n) < 0.2 + 0.6 * scores).astype(np.int64)
    labels[groups == groups[0]] = 1  # one all-positive group
    labels[groups == groups[1]] = 0  # and one all-negative group (unless it is the same group)
    return labels, scores, groups


def _gauc_reference(labels, scores, groups) -> float:
    df = pd.DataFrame({"y": labels, "s": scores, "g": groups})
    per = df.groupby("g").filter(lambda x: x["y"].nunique() == 2).groupby("g")
    aucs = per.apply(lambda x: roc_auc_score(x["y"], x["s"]), include_groups=False)
    return float(np.average(aucs, weights=per.size()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_sklearn_with_ties(seed):
    labels, scores, _ = _data(seed=seed)
    assert metrics.auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auc_of_constant_scores_is_half_and_single_class_is_nan():
    assert metrics.auc(np.array([0, 1, 0, 1]), np.zeros(4)) == pytest.approx(0.5)
    assert np.isnan(metrics.auc(np.ones(5), np.arange(5.0)))
    assert np.isnan(metrics.auc(np.array([]), np.array([])))


def test_auc_rejects_bad_input():
    with pytest.raises(ValueError):
        metrics.auc(np.array([0, 2]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError):
        metrics.auc(np.array([0, 1]), np.array([0.1]))
    with pytest.raises(ValueError):
        metrics.auc(np.array([0, 1]), np.array([0.1, np.nan]))


@pytest.mark.parametrize("seed", [0, 1])
def test_gauc_matches_groupby_reference(seed):
    labels, scores, groups = _data(seed=seed)
    assert metrics.gauc(labels, scores, groups) == pytest.approx(_gauc_reference(labels, scores, groups), abs=1e-12)


def test_grouped_auc_marks_single_class_groups():
    labels, scores, groups = _data()
    result = metrics.grouped_auc(labels, scores, groups)
    single = result.auc[np.searchsorted(result.keys, [groups[0], groups[1]])]
    assert np.isnan(single).all()
    k = np.flatnonzero(~np.isnan(result.auc))[0]
    mask = groups == result.keys[k]
    assert result.auc[k] == pytest.approx(roc_auc_score(labels[mask], scores[mask]))
    assert result.n.sum() == len(labels) and result.positives.sum() == labels.sum()


def test_logloss_matches_sklearn_and_clips():
    rng = np.random.default_rng(3)
    probs = rng.uniform(0.01, 0.99, size=1000)
    labels = (rng.random(1000) < probs).astype(int)
    assert metrics.logloss(labels, probs) == pytest.approx(log_loss(labels, probs), rel=1e-10)
    clipped = metrics.logloss(np.array([1, 0]), np.array([0.0, 1.0]))
    assert clipped == pytest.approx(-np.log(metrics.LOGLOSS_EPS), rel=1e-6)


def _cells_data(n=4000, seed=5):
    rng = np.random.default_rng(seed)
    domain = rng.choice(3, size=n, p=[0.7, 0.3, 0.0])  # domain 2 is empty
    group = rng.integers(0, 40, size=n)
    probs = np.round(rng.random((n, 2)), 2)
    labels = (rng.random((n, 2)) < probs * np.array([1.0, 0.3])).astype(np.int8)
    return probs, labels, domain, group


def test_cell_metrics_match_sklearn_per_cell():
    probs, labels, domain, group = _cells_data()
    tasks, domains = ("click", "like"), ("a", "b", "c")
    df = metrics.cell_metrics(probs, labels, domain, group, tasks, domains)
    assert list(df.columns) == list(metrics.METRIC_COLUMNS)
    expected = [(d, t) for d in domains for t in tasks] + [(ALL_DOMAINS, t) for t in tasks]
    assert list(zip(df["domain"], df["task"])) == expected
    for row in df.itertuples():
        t = tasks.index(row.task)
        mask = np.ones(len(domain), bool) if row.domain == ALL_DOMAINS else domain == domains.index(row.domain)
        assert row.n == mask.sum()
        if row.n == 0:
            assert row.positives == 0 and np.isnan([row.auc, row.gauc, row.logloss]).all()
            continue
        y, p, g = labels[mask, t], probs[mask, t], group[mask]
        assert row.positives == y.sum()
        assert row.auc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert row.gauc == pytest.approx(_gauc_reference(y, p, g), abs=1e-12)
        assert row.logloss == pytest.approx(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]), rel=1e-9)


def test_cell_metrics_rejects_bad_shapes_and_domains():
    probs, labels, domain, group = _cells_data(n=100)
    with pytest.raises(ValueError):
        metrics.cell_metrics(probs[:, :1], labels, domain, group, ("a", "b"), ("x", "y", "z"))
    with pytest.raises(ValueError):
        metrics.cell_metrics(probs, labels, domain, group, ("a", "b"), ("x",))


def test_summary_averages_cells_and_reports_pooled_tasks():
    probs, labels, domain, group = _cells_data()
    df = metrics.cell_metrics(probs, labels, domain, group, ("click", "like"), ("a", "b", "c"))
    out = metrics.summary(df)
    cells = df[(df["domain"] != ALL_DOMAINS) & (df["n"] > 0)]
    assert out["mean_auc"] == pytest.approx(cells["auc"].mean())
    assert out["mean_gauc"] == pytest.approx(cells["gauc"].mean())
    assert out["mean_logloss"] == pytest.approx(cells["logloss"].mean())
    assert out["auc/like"] == pytest.approx(roc_auc_score(labels[:, 1], probs[:, 1]))


def test_weighted_auc_matches_sklearn_sample_weight():
    labels, scores, _ = _data(n=500)
    rng = np.random.default_rng(0)
    weights = rng.integers(0, 4, size=(20, len(labels))).astype(float)
    got = metrics._weighted_auc(labels.astype(float), scores, weights)
    ref = [roc_auc_score(labels, scores, sample_weight=w) for w in weights]
    np.testing.assert_allclose(got, ref, atol=1e-12)


def _naive_bootstrap_std(labels, scores, groups, metric, num_resamples, seed):
    """Reference: explicitly rebuild each resample by concatenating the drawn users' rows
    (each drawn copy of a user is its own group); metrics.auc/gauc are checked above."""
    rng = np.random.default_rng(seed)
    keys = np.unique(groups)
    rows = {k: np.flatnonzero(groups == k) for k in keys}
    values = []
    for _ in range(num_resamples):
        drawn = rng.choice(keys, size=len(keys))
        idx = np.concatenate([rows[k] for k in drawn])
        new_groups = np.repeat(np.arange(len(drawn)), [len(rows[k]) for k in drawn])
        values.append(metrics.auc(labels[idx], scores[idx]) if metric == "auc"
                      else metrics.gauc(labels[idx], scores[idx], new_groups))
    return float(np.std(values))


@pytest.mark.parametrize("metric", ["auc", "gauc"])
def test_bootstrap_ci_spread_matches_naive_resampling(metric):
    labels, scores, groups = _data(n=1500, num_groups=60)
    ci = metrics.bootstrap_ci(labels, scores, groups, metric=metric, num_resamples=400, seed=1)
    point = metrics.auc(labels, scores) if metric == "auc" else metrics.gauc(labels, scores, groups)
    assert ci.estimate == pytest.approx(point)
    assert ci.low < ci.estimate < ci.high
    ref_std = _naive_bootstrap_std(labels, scores, groups, metric, 150, seed=2)
    # a normal 95% interval spans about 3.92 standard deviations
    assert (ci.high - ci.low) / 3.92 == pytest.approx(ref_std, rel=0.3)


def test_bootstrap_ci_paired_difference():
    labels, scores, groups = _data(n=1500, num_groups=60)
    same = metrics.bootstrap_ci(labels, scores, groups, baseline_scores=scores, num_resamples=50)
    assert same.estimate == 0 and same.low == 0 and same.high == 0
    noisy = scores + np.random.default_rng(0).normal(0, 0.5, size=len(scores))
    gain = metrics.bootstrap_ci(labels, scores, groups, baseline_scores=noisy, num_resamples=200)
    assert gain.estimate == pytest.approx(metrics.auc(labels, scores) - metrics.auc(labels, noisy))
    assert gain.low > 0  # the noiseless scores are clearly better


def test_bootstrap_ci_is_cheap_at_100k_rows():
    import time
    rng = np.random.default_rng(0)
    n = 100_000
    groups = rng.integers(0, 5000, size=n)
    scores = rng.random(n)
    labels = (rng.random(n) < scores).astype(int)
    start = time.perf_counter()
    ci = metrics.bootstrap_ci(labels, scores, groups, metric="auc", num_resamples=100)
    assert time.perf_counter() - start < 20
    assert ci.low < ci.estimate < ci.high


def _resample_data(seed: int = 0, n: int = 3000, num_tasks: int = 2, num_domains: int = 3):
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 150, n) * 7 + 3  # sparse, non-contiguous user ids
    domain = rng.choice(num_domains, n, p=[0.7, 0.25, 0.05])
    probs = rng.random((n, num_tasks))
    labels = (rng.random((n, num_tasks)) < 0.3 + 0.4 * probs).astype(np.float64)
    return probs, labels, domain, group


@pytest.mark.parametrize("metric", ["auc", "gauc"])
def test_resampled_cells_equal_cell_metrics_on_the_drawn_rows(metric):
    probs, labels, domain, group = _resample_data()
    tasks, domains = ("a", "b"), ("x", "y", "z")
    keys, counts = user_resamples(group, num_resamples=3, seed=1)
    counts[0] = 1  # the identity resample: the plain test set
    values = resampled_cells(probs, labels, domain, group, len(domains), metric, keys, counts)
    np.testing.assert_allclose(values[:, 0], cell_metrics(probs, labels, domain, group, tasks, domains)[metric], rtol=1e-12)
    for r in (1, 2):  # a bootstrap draw = every row of a user repeated as often as the user was drawn
        repeat = counts[r][np.searchsorted(keys, group)]
        rows = np.repeat(np.arange(len(group)), repeat)
        expected = cell_metrics(probs[rows], labels[rows], domain[rows], group[rows], tasks, domains)[metric]
        np.testing.assert_allclose(values[:, r], expected, rtol=1e-9)


def test_resampled_cells_rejects_unknown_users():
    probs, labels, domain, group = _resample_data()
    keys, counts = user_resamples(group[group != group[0]], num_resamples=2)
    with pytest.raises(ValueError, match="not among the resampled keys"):
        resampled_cells(probs, labels, domain, group, 3, "auc", keys, counts)
