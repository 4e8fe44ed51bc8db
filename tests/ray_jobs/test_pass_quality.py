"""Eviction policies on the drifting stream, trained pass by pass with the item table capped at
1/10 of the distinct items: feature_score's next-day AUC must match or beat LRU and LFU and stay
close to an unbounded table. One spawned rank runs every variant through `run_local` (the
pass loop of the Ray workers, without Ray), so the comparison costs no Ray start-ups.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.distributed import run_distributed
from tests.ray_jobs.pass_quality_body import run_all

MAX_GAP_TO_UNBOUNDED = 0.03  # measured: see docs/collision.md


@pytest.fixture(scope="module")
def quality(tmp_path_factory):
    return run_distributed(run_all, 1, str(tmp_path_factory.mktemp("quality")), timeout=900)[0]


def _mean_auc(quality, variant: str) -> float:
    return float(np.mean(quality["results"][variant]["auc"]))


def test_feature_score_beats_lru_and_lfu_and_nears_unbounded(quality):
    results = quality["results"]
    for variant, result in results.items():
        assert len(result["auc"]) >= 3 and all(0.5 < a < 1 for a in result["auc"]), (variant, result["auc"])
        if variant != "unbounded":  # the cap binds and forces evictions
            assert quality["distinct"]["item_id"] >= 10 * result["rows"]
            assert max(result["rows_in_use"]) == result["rows"] - 1 and result["evictions"] > 0
        sizes = result["checkpoint_mb"]  # one checkpoint per pass, all kept by run_local
        # flat: only the JSON of RNG states and progress may change by a few bytes
        assert len(sizes) == len(result["rows_in_use"]) and max(sizes) - min(sizes) < 1e-3 * min(sizes), (variant, sizes)
    assert results["unbounded"]["evictions"] == 0
    score, lru, lfu, unbounded = (_mean_auc(quality, v) for v in ("feature_score", "lru", "lfu", "unbounded"))
    print(f"next-day mean AUC: feature_score {score:.4f}, lru {lru:.4f}, lfu {lfu:.4f}, unbounded {unbounded:.4f}")
    assert score >= lru and score >= lfu
    assert unbounded - score < MAX_GAP_TO_UNBOUNDED


def test_reassigned_rows_restart_from_zero(quality):
    out = quality["reset"]
    before, after, momentum = (np.asarray(out[k]) for k in ("before", "after", "momentum"))
    np.testing.assert_array_equal(after[[1, 2]], 0)
    np.testing.assert_array_equal(after[[0, 3, 4, 5]], before[[0, 3, 4, 5]])  # other rows untouched
    assert np.abs(before[[1, 2]]).sum() > 0
    np.testing.assert_array_equal(momentum, [1, 0, 0, 1, 1, 1])
