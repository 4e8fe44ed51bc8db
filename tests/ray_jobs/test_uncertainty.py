"""Bootstrap intervals over test users, against brute force: repeat each drawn user's rows."""

from __future__ import annotations

import numpy as np
import pytest

from modules.spec import DatasetSpec, SparseFeature
from ray_jobs.evaluation.predictions import Predictions
from ray_jobs.evaluation.metrics import cell_metrics, summary, user_resamples
from ray_jobs.evaluation.uncertainty import confidence_intervals, replicates

SPEC = DatasetSpec(sparse_features=(SparseFeature("user_id", 10, 4, role="user"),), dense_features=(),
                   tasks=("click", "like"), domains=("big", "small"))


def _predictions(seed: int, n: int = 2000, noise: float = 1.0) -> Predictions:
    rng = np.random.default_rng(seed)
    data = np.random.default_rng(0)  # the same test rows for every model
    group = data.integers(0, 120, n) * 3
    domain = (data.random(n) < 0.2).astype(np.int64)
    truth = data.random((n, 2))
    labels = (data.random((n, 2)) < truth).astype(np.float32)
    probs = np.clip(truth + noise * 0.3 * rng.standard_normal((n, 2)), 0.001, 0.999).astype(np.float32)
    return Predictions(probs, labels, domain, group, np.arange(n))


def _brute_force_mean(p: Predictions, keys: np.ndarray, draw: np.ndarray, metric: str) -> float:
    rows = np.repeat(np.arange(len(p.group)), draw[np.searchsorted(keys, p.group)])
    table = cell_metrics(p.probs[rows], p.labels[rows], p.domain[rows], p.group[rows], SPEC.tasks, SPEC.domains)
    return summary(table)[f"mean_{metric}"]


@pytest.mark.parametrize("metric", ["auc", "gauc"])
def test_replicates_average_the_seeds_of_each_resampled_test_set(metric):
    seeds = [_predictions(1), _predictions(2)]
    keys, counts = user_resamples(seeds[0].group, num_resamples=4, seed=3)
    rep = replicates(seeds, SPEC, keys, counts)
    for r in range(4):
        expected = np.mean([_brute_force_mean(p, keys, counts[r], metric) for p in seeds])
        assert rep.mean[metric][r] == pytest.approx(expected, rel=1e-9)


def test_paired_gain_interval_is_zero_for_a_copy_and_excludes_zero_for_a_better_model():
    good, copy, better = _predictions(1), _predictions(1), _predictions(5, noise=0.3)
    summary_ci, cells_ci = confidence_intervals({"base": [good], "copy": [copy], "better": [better]}, SPEC,
                                                baseline="base", num_resamples=100)
    ci = summary_ci.set_index(["model", "metric"])
    assert ci.loc[("copy", "auc"), "gain_low"] == 0 and ci.loc[("copy", "auc"), "gain_high"] == 0
    assert ci.loc[("better", "auc"), "gain_low"] > 0
    assert np.isnan(ci.loc[("base", "auc"), "gain_low"])
    # each interval brackets its point estimate, and the small domain's cells are wider
    point = summary(good.metrics(SPEC))["mean_auc"]
    assert ci.loc[("base", "auc"), "low"] < point < ci.loc[("base", "auc"), "high"]
    cells = cells_ci[(cells_ci["model"] == "base") & (cells_ci["metric"] == "auc")].set_index(["domain", "task"])
    width = cells["high"] - cells["low"]
    assert width[("small", "click")] > width[("big", "click")]
