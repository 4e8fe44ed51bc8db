"""A worker killed mid-training: the job resumes from its last checkpoint and finishes."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from ray_jobs.config import DataConfig, JobConfig, ModelConfig, TrainConfig, WorkersConfig
from ray_jobs.train import run

TOLERANCE = 0.03  # test mean AUC, resumed vs uninterrupted (Ray Data's shard order may differ)


def _kill_a_worker_after_first_checkpoint(run_dir: Path, killed: list[int], timeout: float = 600.0) -> None:
    from ray.util.state import list_actors

    deadline = time.time() + timeout
    while time.time() < deadline and not any(run_dir.glob("checkpoint_*")):
        time.sleep(0.5)
    workers = list_actors(filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
    if workers:
        pid = int(workers[-1]["pid"])
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)


@pytest.fixture(scope="module")
def config(tiny_data, tmp_path_factory) -> JobConfig:
    return JobConfig(
        name="ft",
        data=DataConfig(path=str(tiny_data), generate=None, batch_size=128),
        model=ModelConfig(arch="sharedbottom"),
        train=TrainConfig(epochs=2, log_every=1000, checkpoint_every_steps=20),
        workers=WorkersConfig(num_workers=2, max_failures=1),
        runs_dir=str(tmp_path_factory.mktemp("runs")),
    )


def test_killed_worker_resumes_and_matches_uninterrupted_run(ray_session, config, capfd):
    killed: list[int] = []
    killer = threading.Thread(target=_kill_a_worker_after_first_checkpoint,
                              args=(Path(config.runs_dir) / "interrupted", killed), daemon=True)
    killer.start()
    interrupted = run(config, run_name="interrupted")
    killer.join(timeout=5)
    assert killed, "no worker was killed: the test did not exercise a failure"
    assert "resumed from checkpoint at epoch 1 step" in capfd.readouterr().out

    uninterrupted = run(config, run_name="uninterrupted")
    got = json.loads((interrupted / "metrics.json").read_text())["summary"]
    want = json.loads((uninterrupted / "metrics.json").read_text())["summary"]
    assert got["epoch"] == want["epoch"] == 2
    assert abs(got["test_mean_auc"] - want["test_mean_auc"]) < TOLERANCE
