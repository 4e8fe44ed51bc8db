"""STEM-Net's bucket analysis: buckets by the reference's log-ratio, AUCs joined by sample id."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from modules.strict import ConfigError
from ray_jobs.evaluation.conflict import buckets, bucket_aucs, by_sample_id, subset_of
from ray_jobs.evaluation.predictions import Predictions

TASKS = ("a", "b")


def _predictions(seed: int, n: int = 1003) -> Predictions:
    rng = np.random.default_rng(seed)
    truth = np.random.default_rng(0).random((n, 2))
    labels = (np.random.default_rng(1).random((n, 2)) < truth).astype(np.float32)
    probs = np.clip(truth + 0.2 * rng.standard_normal((n, 2)), 0.01, 0.99).astype(np.float32)
    return Predictions(probs, labels, np.zeros(n, np.int64), np.arange(n) % 50, np.arange(n) * 7)


def _shuffled(p: Predictions, seed: int) -> Predictions:
    order = np.random.default_rng(seed).permutation(len(p.sample_id))
    return Predictions(p.probs[order], p.labels[order], p.domain[order], p.group[order], p.sample_id[order])


def test_buckets_are_equal_frequency_and_ordered_by_log_ratio():
    ref = _predictions(3)
    bucket = buckets(ref, 0, 1)
    assert sorted(np.bincount(bucket)[1:]) == [100] * 7 + [101] * 3
    ratio = np.log(ref.probs[:, 0]) - np.log(ref.probs[:, 1])
    assert all(ratio[bucket == k].max() <= ratio[bucket == k + 1].min() for k in range(1, 10))
    shifted = Predictions(ref.probs * np.array([0.5, 1.0], np.float32), ref.labels, ref.domain, ref.group, ref.sample_id)
    np.testing.assert_array_equal(buckets(shifted, 0, 1), bucket)  # a base-rate change moves nothing
    assert [subset_of(k) for k in (1, 3, 4, 7, 8, 10)] == ["B-overwhelming"] * 2 + ["comparable"] * 2 + ["A-overwhelming"] * 2


def test_bucket_aucs_join_by_sample_id_and_match_sklearn():
    ref, model = _predictions(3), _predictions(4)
    table = bucket_aucs({"ref": [_shuffled(ref, 0)], "model": [_shuffled(model, 1)]}, "ref", TASKS, "a", "b")
    bucket = buckets(ref, 0, 1)  # ref is already in sample-id order
    for k in (1, 5, 10):
        rows = bucket == k
        got = table[(table["model"] == "model") & (table["task"] == "b") & (table["bucket"] == k)]["auc"].item()
        assert got == pytest.approx(roc_auc_score(model.labels[rows, 1], model.probs[rows, 1]), abs=1e-12)
    rows = bucket >= 8
    got = table[(table["model"] == "model") & (table["task"] == "a") & (table["subset"] == "A-overwhelming")
                & (table["bucket"] == 0)]["auc"].item()
    assert got == pytest.approx(roc_auc_score(model.labels[rows, 0], model.probs[rows, 0]), abs=1e-12)


def test_missing_or_duplicate_ids_and_unknown_names_are_errors():
    p = _predictions(3)
    no_ids = Predictions(p.probs, p.labels, p.domain, p.group, np.full(len(p.group), -1))
    with pytest.raises(ConfigError, match="no sample ids"):
        by_sample_id(no_ids, "run")
    dup = Predictions(p.probs, p.labels, p.domain, p.group, np.zeros(len(p.group), np.int64))
    with pytest.raises(ConfigError, match="duplicate sample ids"):
        by_sample_id(dup, "run")
    with pytest.raises(ConfigError, match="not among the models"):
        bucket_aucs({"m": [p]}, "ref", TASKS, "a", "b")
    with pytest.raises(ConfigError, match="unknown task"):
        bucket_aucs({"ref": [p]}, "ref", TASKS, "a", "c")
