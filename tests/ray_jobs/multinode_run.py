"""Runs the train job twice on one local 2-node Ray cluster (own process: the test session's
Ray instance cannot host a second cluster): the 2 workers spread over both nodes
(STRICT_SPREAD), then packed on one node (STRICT_PACK). Prints each run's metrics JSON."""

from __future__ import annotations

import json
import sys

import ray
from ray.cluster_utils import Cluster

from ray_jobs.core.config import DataConfig, JobConfig, ModelConfig, TrainConfig, WorkersConfig
from ray_jobs.training.job import train as run


def main(data: str, runs_dir: str) -> None:
    cluster = Cluster()
    for _ in range(2):
        cluster.add_node(num_cpus=3)  # one node holds both workers (STRICT_PACK) and a read task
    ray.init(address=cluster.address)
    nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    for placement in ("STRICT_SPREAD", "STRICT_PACK"):
        config = JobConfig(
            name=placement.lower(),
            data=DataConfig(path=data, generate=None, batch_size=256),
            model=ModelConfig(arch="sharedbottom"),
            train=TrainConfig(epochs=1, log_every=1000),
            workers=WorkersConfig(num_workers=2, placement_strategy=placement),
            runs_dir=runs_dir,
        )
        run_dir = run(config, run_name=placement.lower())
        metrics = json.loads((run_dir / "metrics.json").read_text())
        print(f"MULTINODE_RESULT {placement} " + json.dumps(
            {"worker_nodes": metrics["worker_nodes"], "summary": metrics["summary"], "cluster_nodes": nodes}))
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
