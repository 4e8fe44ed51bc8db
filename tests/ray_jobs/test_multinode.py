"""A real multi-node run: a local 2-node Ray cluster, one train worker on each node, against
the same job with both workers on one node of that cluster."""

from __future__ import annotations

from tests.ray_jobs.cluster_script import run_cluster_script

TOLERANCE = 0.03  # test mean AUC between the 2-node and the 1-node run (shard order may differ)


def _runs(tiny_data, tmp_path) -> dict[str, dict]:
    results, _ = run_cluster_script("tests.ray_jobs.multinode_run", str(tiny_data), str(tmp_path / "runs"),
                                    tag="MULTINODE_RESULT", expect=2)
    return results


def test_two_nodes_one_worker_each_match_a_single_node_run(tiny_data, tmp_path):
    runs = _runs(tiny_data, tmp_path)
    spread, single = runs["STRICT_SPREAD"], runs["STRICT_PACK"]
    assert len(spread["cluster_nodes"]) == 2
    assert len(set(spread["worker_nodes"])) == 2, "the two workers must run on distinct nodes"
    assert set(spread["worker_nodes"]) == set(spread["cluster_nodes"])
    assert len(set(single["worker_nodes"])) == 1
    assert abs(spread["summary"]["test_mean_auc"] - single["summary"]["test_mean_auc"]) < TOLERANCE
