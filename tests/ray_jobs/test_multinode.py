"""A real multi-node run: a local 2-node Ray cluster, one train worker on each node."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

TOLERANCE = 0.03  # test mean AUC between the 2-node and the 1-node run (shard order may differ)


def _run(tiny_data, tmp_path, nodes: int) -> dict:
    env = {**os.environ, "RAY_ADDRESS": ""}
    proc = subprocess.run([sys.executable, "-m", "tests.ray_jobs.multinode_run", str(tiny_data),
                           str(tmp_path / f"runs{nodes}"), str(nodes)],
                          capture_output=True, text=True, timeout=900, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("MULTINODE_RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1].split(" ", 1)[1])


@pytest.mark.slow
def test_two_nodes_one_worker_each_match_a_single_node_run(tiny_data, tmp_path):
    spread = _run(tiny_data, tmp_path, nodes=2)
    assert len(spread["cluster_nodes"]) == 2
    assert len(set(spread["worker_nodes"])) == 2, "the two workers must run on distinct nodes"
    assert set(spread["worker_nodes"]) == set(spread["cluster_nodes"])
    single = _run(tiny_data, tmp_path, nodes=1)
    assert len(set(single["worker_nodes"])) == 1
    assert abs(spread["summary"]["test_mean_auc"] - single["summary"]["test_mean_auc"]) < TOLERANCE
