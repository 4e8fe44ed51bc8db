"""A worker killed mid-training: the job resumes from its last checkpoint and finishes.

Marked `fault`: it passed in a local run but failed once in a clean-clone CI run (the killed
process was not one of the run's workers, so no resume happened); until the worker selection
is made reliable it runs with `make test-fault`, not in `make test`.
"""

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


def _train_workers_of_this_session() -> list[int]:
    """PIDs of live RayTrainWorker processes of *this* Ray session (other Ray instances may run
    on the machine): core-worker log files in the session directory carry their PIDs."""
    import psutil
    import ray

    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    started = []
    for log in logs.glob("python-core-worker-*.log"):
        pid = int(log.stem.rsplit("_", 1)[1])
        try:
            process = psutil.Process(pid)
            if process.cmdline()[0].startswith("ray::RayTrainWorker"):
                started.append((process.create_time(), pid))
        except (psutil.NoSuchProcess, psutil.AccessDenied, IndexError):
            continue
    return [pid for _, pid in sorted(started)]  # oldest first: the current run's are last


def _kill_a_worker_after_first_checkpoint(run_dir: Path, killed: list[int], timeout: float = 900.0) -> None:
    # a checkpoint directory appears when its upload starts; once a second one appears the
    # first is committed, so the restarted workers must find it
    deadline = time.time() + timeout
    while time.time() < deadline and len(list(run_dir.glob("checkpoint_*"))) < 2:
        time.sleep(0.2)
    workers = _train_workers_of_this_session()
    if workers:
        os.kill(workers[-1], signal.SIGKILL)
        killed.append(workers[-1])


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


@pytest.mark.fault
def test_killed_worker_resumes_and_matches_uninterrupted_run(ray_session, config, capfd):
    killed: list[int] = []
    killer = threading.Thread(target=_kill_a_worker_after_first_checkpoint,
                              args=(Path(config.runs_dir) / "interrupted", killed), daemon=True)
    killer.start()
    interrupted = run(config, run_name="interrupted")
    killer.join(timeout=5)
    assert killed, "no worker was killed: the test did not exercise a failure"
    out = capfd.readouterr().out
    resumes = [line for line in out.splitlines() if "resumed from checkpoint" in line]
    assert resumes and "at epoch 1 step" in resumes[0], f"killed {killed}; output tail:\n{out[-4000:]}"

    uninterrupted = run(config, run_name="uninterrupted")
    got = json.loads((interrupted / "metrics.json").read_text())["summary"]
    want = json.loads((uninterrupted / "metrics.json").read_text())["summary"]
    assert got["epoch"] == want["epoch"] == 2
    assert abs(got["test_mean_auc"] - want["test_mean_auc"]) < TOLERANCE
