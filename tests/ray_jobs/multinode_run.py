"""Runs the train job on a local 2-node Ray cluster, one worker per node (own process: the
test session's Ray instance cannot host a second cluster). Prints the run's metrics JSON."""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import ray
from ray.cluster_utils import Cluster

from ray_jobs.core.config import DataConfig, JobConfig, ModelConfig, TrainConfig, WorkersConfig
from ray_jobs.training.job import train as run


def main(data: str, runs_dir: str, nodes: int) -> None:
    cluster = Cluster()
    for _ in range(nodes):
        cluster.add_node(num_cpus=3 if nodes == 1 else 2)
    ray.init(address=cluster.address)
    config = JobConfig(
        name=f"nodes{nodes}",
        data=DataConfig(path=data, generate=None, batch_size=256),
        model=ModelConfig(arch="sharedbottom"),
        train=TrainConfig(epochs=1, log_every=1000),
        workers=WorkersConfig(num_workers=2, placement_strategy="STRICT_SPREAD" if nodes > 1 else "PACK"),
        runs_dir=runs_dir,
    )
    run_dir = run(replace(config), run_name=f"nodes{nodes}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    print("MULTINODE_RESULT " + json.dumps({"worker_nodes": metrics["worker_nodes"], "summary": metrics["summary"],
                                            "cluster_nodes": [n["NodeID"] for n in ray.nodes() if n["Alive"]]}))
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
