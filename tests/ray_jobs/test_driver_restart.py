"""The driver SIGKILLed mid-run and started again with the same command resumes its run.

`python -m ray_jobs.train --config job.yaml --run-name X` runs in a subprocess with its own
local Ray; once Ray Train has committed a checkpoint (its checkpoint_manager_snapshot.json in
the run directory), the driver gets SIGKILL (and the Ray processes it started go with it, as
they would with a lost driver node). While it lived, a second driver with the same run name
was refused; started again after the kill, the same command takes the dead driver's lock over,
Ray Train v2 reloads the run's checkpoint list from storage by run name, the train loop resumes
at the latest checkpoint and the run ends with exactly the metrics of the uninterrupted run
(`trained_run`, same config and world size; tolerance exact, for the reasons in
test_fault_tolerance.py: weights, optimizer state, RNG and the batch position are restored and
the ordered ingest feeds the same batches).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import ray  # noqa: F401  (puts Ray's bundled psutil on the path)
import psutil

from ray_jobs.core.config import dump_config

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train v2's committed-checkpoint list (train/v2/_internal/constants.py)


def _driver(job: Path, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "ray_jobs.train", "--config", str(job), "--run-name", "X"],
                                cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, stdout=out, stderr=subprocess.STDOUT)


def _kill_with_descendants(proc: subprocess.Popen) -> None:
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for child in psutil.wait_procs(children, timeout=15)[1]:  # what a lost driver node takes with it
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


def test_killed_driver_restarted_by_run_name_resumes_and_matches_uninterrupted_run(trained_run, tmp_path, capsys):
    from ray_jobs.train import main

    uninterrupted_config, uninterrupted = trained_run
    job = tmp_path / "job.yaml"
    job.write_text(dump_config(replace(uninterrupted_config, runs_dir=str(tmp_path / "runs"))))
    run_dir = tmp_path / "runs" / "X"

    first = _driver(job, tmp_path / "first.log")
    try:
        deadline = time.monotonic() + 400
        while not (run_dir / SNAPSHOT).exists():
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-4000:]
            assert time.monotonic() < deadline, "no checkpoint committed in time"
            time.sleep(0.5)
        # a second driver for the same run while the first lives: refused before it starts anything
        assert main(["--config", str(job), "--run-name", "X"]) == 2
        assert f"run 'X' is in use: its driver (pid {first.pid} on host" in capsys.readouterr().err
    finally:
        _kill_with_descendants(first)
    assert not (run_dir / "metrics.json").exists(), "the driver was to die mid-run"

    second = _driver(job, tmp_path / "second.log")
    assert second.wait(timeout=600) == 0, (tmp_path / "second.log").read_text()[-4000:]
    out = (tmp_path / "second.log").read_text()
    assert "taking over the lock of driver pid" in out
    assert "resumed from checkpoint at epoch" in out, out[-4000:]

    got = json.loads((run_dir / "metrics.json").read_text())
    want = json.loads((uninterrupted / "metrics.json").read_text())
    for key in ("epoch", "test_mean_auc", "test_mean_gauc", "test_mean_logloss", "val_mean_auc"):
        assert got["summary"][key] == want["summary"][key], key
    assert json.dumps(got["cells"]) == json.dumps(want["cells"])
    assert want["resumes"] == [] and len(got["resumes"]) == 1, (want["resumes"], got["resumes"])
    assert "driver restarted" in got["resumes"][0]["reason"], got["resumes"]  # a new driver process
    assert got["resumes"][0]["world_size_before"] == got["resumes"][0]["world_size_after"] == 2
