"""One driver per run name (ray_jobs/training/run_lock.py): a second driver is refused while the
first lives, and takes the run over once the first is SIGKILLed (no Ray here: the lock alone)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from modules.strict import ConfigError
from ray_jobs.core.run_dir import DRIVER_LOCK_FILE
from ray_jobs.training.run_lock import hold_run

ROOT = Path(__file__).resolve().parents[2]
HOLDER = "import sys; from ray_jobs.training.run_lock import hold_run; hold_run(sys.argv[1]); print('HELD', flush=True); sys.stdin.read()"


def _other_driver(run_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "HELD"
    return proc


def test_a_live_driver_keeps_its_run_and_a_killed_ones_run_is_taken_over(tmp_path):
    run_dir = tmp_path / "runs" / "X"
    other = _other_driver(run_dir)
    try:
        with pytest.raises(ConfigError, match=rf"run 'X' is in use: its driver \(pid {other.pid} on host "
                                              rf"{socket.gethostname()}, started .*\) still runs"):
            hold_run(run_dir)
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait()
    assert json.loads((run_dir / DRIVER_LOCK_FILE).read_text())["pid"] == other.pid  # left behind: stale
    lock = hold_run(run_dir)
    assert json.loads((run_dir / DRIVER_LOCK_FILE).read_text())["pid"] == os.getpid()
    lock.release()
    assert (run_dir / DRIVER_LOCK_FILE).read_text() == ""


def test_the_lock_is_reentrant_in_one_process_and_free_after_the_last_release(tmp_path):
    run_dir = tmp_path / "X"
    first, second = hold_run(run_dir), hold_run(run_dir)
    assert first is second
    first.release()
    with pytest.raises(subprocess.CalledProcessError):  # still held by this process
        subprocess.run([sys.executable, "-c", HOLDER, str(run_dir)], check=True, cwd=ROOT, input="", text=True,
                       capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    second.release()
    other = _other_driver(run_dir)  # free now
    other.communicate("")
