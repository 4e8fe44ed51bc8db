"""The decisive distributed test: a DMP-sharded model equals its unsharded self."""

import pytest

from tests.distributed import run_distributed
from tests.sharding.sharded_vs_unsharded import compare_one_step


@pytest.mark.parametrize("sharding_types", [("table_wise",), ("column_wise",)])
def test_sharedbottom_two_gloo_ranks(sharding_types):
    results = run_distributed(compare_one_step, 2, "sharedbottom", {}, sharding_types)
    for rank, r in enumerate(results):
        assert r["mismatches"] == [], f"rank {rank}: {r['mismatches']}"
        assert r["sharding_types"] == list(sharding_types)
        assert r["changed"] == r["total"], "every parameter should move in one step"
