"""The decisive distributed test: a DMP-sharded model equals its unsharded self."""

import pytest

from modules.dense.registry import ARCHS
from tests.distributed import run_distributed
from tests.sharding.sharded_vs_unsharded import compare_archs, compare_one_step


@pytest.mark.parametrize("sharding_types", [("table_wise",), ("column_wise",)])
def test_sharedbottom_two_gloo_ranks(sharding_types):
    results = run_distributed(compare_one_step, 2, "sharedbottom", {}, sharding_types)
    for rank, r in enumerate(results):
        assert r["mismatches"] == [], f"rank {rank}: {r['mismatches']}"
        assert r["sharding_types"] == list(sharding_types)
        assert r["changed"] == r["total"], "every parameter should move in one step"


def test_every_registered_architecture_two_gloo_ranks():
    """Outputs, loss and parameters after one step, for every model in the registry (one pair
    of processes runs them all: process start-up dominates otherwise)."""
    archs = sorted(ARCHS)
    results = run_distributed(compare_archs, 2, archs)
    for rank, per_arch in enumerate(results):
        assert sorted(per_arch) == archs
        for arch, r in per_arch.items():
            assert r["mismatches"] == [], f"rank {rank} {arch}: {r['mismatches']}"
