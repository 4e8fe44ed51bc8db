"""Runs a script that starts its own local multi-node Ray cluster (`ray.cluster_utils.Cluster`)
in a subprocess: the test session's Ray instance cannot host a second cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys

# a loaded machine starts a node's raylet and dashboard agent slower than Ray's defaults allow
SLOW_START = {"RAY_raylet_start_wait_time_s": "300", "RAY_agent_register_timeout_ms": "300000"}


def run_cluster_script(module: str, *args: str, tag: str, expect: int,
                       timeout: float = 900) -> tuple[dict[str, dict], subprocess.CompletedProcess]:
    """Runs `python -m module *args`; returns the JSON payloads of its stdout lines
    `<tag> <name> <json>` by name, and the finished process. Asserts it exited 0 and printed
    `expect` of them (the output's tails in the message when not)."""
    env = {**os.environ, "RAY_ADDRESS": "", **SLOW_START}
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout, env=env)
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith(f"{tag} "):
            _, name, payload = line.split(" ", 2)
            results[name] = json.loads(payload)
    assert proc.returncode == 0 and len(results) == expect, proc.stdout[-4000:] + proc.stderr[-4000:]
    return results, proc
