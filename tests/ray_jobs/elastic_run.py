"""An elastic run losing a node, on a local 2-node Ray cluster (own process: the test session's
Ray instance cannot host a second cluster). Prints each run's metrics.json as one JSON line.

The head node (this driver, Ray Train's controller) and one worker node have 3 CPUs each and
a train worker takes 2, so each node holds one worker and one Ray Data read task. First the
reference: an uninterrupted 1-worker run. Then the same job with `num_workers: [1, 2]`: Ray
Train starts 2 workers, one per node; the worker on the second node stops responding after
HANG_STEP steps (`SEESAW_INJECT_NODE_HANG`, the step of a mid-epoch checkpoint, so the group
holds still at a committed checkpoint); once that checkpoint is committed, the second node is
removed from the cluster. The group fails, and Ray Train's elastic policy restarts it with the
one worker the head still has room for.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from ray_jobs.core.config import DataConfig, JobConfig, ModelConfig, TrainConfig, WorkersConfig
from ray_jobs.training.fault_injection import HANG_ENV_VAR
from ray_jobs.training.job import train as run

CHECKPOINT_EVERY = 5
HANG_STEP = 2 * CHECKPOINT_EVERY  # of epoch 1, on 2 workers: 10 of its 31 steps
SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train v2's committed-checkpoint list
# How long Ray Train waits for a worker group's placement group before it tries another size.
# Just after the node is removed, the elastic policy still sees its CPUs and asks for 2 workers;
# that placement group can never be ready, and Ray's default (60 s) cost this test a minute of
# idle wait. A placement group that fits is ready in well under a second, even on a loaded machine.
PLACEMENT_WAIT_S = "15"


def job(name: str, num_workers: int | tuple[int, int], data: str, runs_dir: str) -> JobConfig:
    return JobConfig(
        name=name,
        data=DataConfig(path=data, generate=None, batch_size=256),
        model=ModelConfig(arch="sharedbottom"),
        train=TrainConfig(epochs=1, log_every=1000, checkpoint_every_steps=CHECKPOINT_EVERY),
        workers=WorkersConfig(num_workers=num_workers, cpus_per_worker=2, max_failures=1),
        runs_dir=runs_dir,
    )


def committed(run_dir: Path, step: int) -> bool:
    """Whether Ray Train has committed the checkpoint reported at `step` of the epoch."""
    try:
        snapshot = json.loads((run_dir / SNAPSHOT).read_text())
    except (FileNotFoundError, json.JSONDecodeError):  # not written yet, or being written
        return False
    return any(c["metrics"].get("step") == step and not c["metrics"].get("epoch_end")
               for c in snapshot.get("checkpoint_results", []))


def main(data: str, runs_dir: str) -> None:
    os.environ["RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"] = PLACEMENT_WAIT_S  # the driver passes it on to the controller
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 3})
    second = cluster.add_node(num_cpus=3)
    ray.init(address=cluster.address)
    out = {"reference": run(job("reference", 1, data, runs_dir), run_name="reference")}

    os.environ[HANG_ENV_VAR] = f"{second.node_id}:{HANG_STEP}"
    elastic: dict[str, Path] = {}
    thread = threading.Thread(target=lambda: elastic.update(
        run=run(job("elastic", (1, 2), data, runs_dir), run_name="elastic")), daemon=True)
    thread.start()
    deadline = time.monotonic() + 600  # a loaded CI machine trains at ~2 s/step
    while not committed(Path(runs_dir) / "elastic", HANG_STEP):
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"no checkpoint at step {HANG_STEP} committed")
        time.sleep(0.2)
    print(f"ELASTIC_EVENT removing node {second.node_id}", flush=True)
    cluster.remove_node(second)
    thread.join()
    out["elastic"] = elastic["run"]
    for name, run_dir in out.items():
        print(f"ELASTIC_RESULT {name} " + (run_dir / "metrics.json").read_text().replace("\n", " "), flush=True)
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
