"""The console of a default run: Seesaw's lines, a progress bar, and next to nothing else.

A tiny 1-worker job runs as a person would start it (`python -m ray_jobs.train`, its own local
Ray) and its console is read line by line: Ray's, Ray Train's, Ray Data's, TorchRec's and
FBGEMM's records belong in `<run dir>/logs/`, not on the console.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
RAY_PREFIX = re.compile(r"^\((\w+)? ?pid=[^)]*\)\s?")  # how Ray tags a line forwarded from a worker
# The raylet's "N PYTHON worker processes have been started ... Nx the maximum expected startup
# concurrency": how many Ray worker processes were still starting at once, i.e. the machine's
# load (none on an idle 2-core machine, a dozen on a shared one), not anything a job prints.
MACHINE_LOAD = re.compile(r"^\(raylet\) WARNING: \d+ PYTHON worker processes have been started")
BAR = re.compile(r"^(epoch \d+/\d+)[ :|]")  # the progress bar: tqdm_ray's line, drawn by the driver
MAX_LINES, MAX_FOREIGN = 40, 5


def _lines(text: str) -> list[str]:
    """Console lines as a person sees them: a progress bar's redraws (\\r) count as its last state."""
    lines = [ANSI.sub("", line).split("\r")[-1].strip() for line in text.splitlines() if line.strip()]
    kept, bars = [], set()
    for line in lines:
        bar = BAR.match(RAY_PREFIX.sub("", line))
        if bar:  # on a terminal tqdm redraws its bar in place; into a pipe each redraw is a new line
            if (line.split(")")[0], bar.group(1)) in bars:
                continue
            bars.add((line.split(")")[0], bar.group(1)))
        if not MACHINE_LOAD.match(line):
            kept.append(line)
    return kept


def _is_seesaws(line: str) -> bool:
    line = RAY_PREFIX.sub("", line)
    return line.startswith("[seesaw]") or bool(BAR.match(line))


def test_a_tiny_job_prints_few_lines_that_are_not_seesaws(tiny_data, tmp_path):
    runs = tmp_path / "runs"
    env = {**os.environ, "RAY_ADDRESS": "", "PYTHONPATH": os.getcwd()}
    env.pop("SEESAW_VERBOSE", None)
    proc = subprocess.run([sys.executable, "-m", "ray_jobs.train", "--config", "configs/tiny.yaml",
                           "--data", str(tiny_data), "--num-workers", "1", "--run-name", "quiet",
                           "--set", f"runs_dir={runs}", "--set", "train.max_steps_per_epoch=20",
                           "--set", "train.log_every=5"],
                          capture_output=True, text=True, timeout=900, env=env)
    console = _lines(proc.stdout) + _lines(proc.stderr)
    assert proc.returncode == 0, "\n".join(console[-60:])
    foreign = [line for line in console if not _is_seesaws(line)]
    assert len(foreign) <= MAX_FOREIGN, "not Seesaw's:\n" + "\n".join(foreign)
    assert len(console) <= MAX_LINES, "\n".join(console)
    seesaw = "\n".join(console)
    assert "sharding plan" in seesaw and "epoch 1: val mean AUC" in seesaw and "run directory" in seesaw

    logs = runs / "quiet" / "logs"
    assert (logs / "driver.log").exists()
    worker = (logs / "worker-0.log").read_text()
    assert "sharding plan" in worker, "the worker's Seesaw lines are in its log file too"
    assert "GreedyPerfPartitioner" in worker, "TorchRec's planner INFO records go to the worker's log file"
    assert re.search(r"epoch 1/1 .*samples/s .*step 5 ", worker), "the progress lines go to the log file"
    assert Path(runs / "quiet" / "metrics.json").exists()
