"""Deliberate fault injection for chaos testing: a train worker that SIGKILLs itself, or the
workers of one node that stop responding.

    SEESAW_INJECT_WORKER_KILL=<rank>:<step> python -m ray_jobs.train --config job.yaml
    SEESAW_INJECT_NODE_HANG=<Ray node id>:<step> python -m ray_jobs.train --config job.yaml

The driver reads the variables (`from_env`) and passes them to the workers in the
train_loop_config. With WORKER_KILL, rank <rank> kills its own process with SIGKILL right after
its <step>-th train step, counted across epochs (a checkpoint due at that step is reported
first), and only on an attempt that restored no checkpoint: the restarted group trains on. The
process dies as a real failure would (no Python cleanup, no error raised), so Ray Train's
FailureConfig (`workers.max_failures`) must detect it, restart the group and resume from the
latest committed checkpoint.

With NODE_HANG, every worker on that node stops (sleeps) right after its <step>-th step, on the
first attempt only, as a node that hangs before it is lost: the group holds still at a known,
committed checkpoint until the test removes the node (`ray.cluster_utils.Cluster.remove_node`),
which is the failure Ray Train then sees. Unset (the default), nothing happens.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import ray

ENV_VAR = "SEESAW_INJECT_WORKER_KILL"
HANG_ENV_VAR = "SEESAW_INJECT_NODE_HANG"


def _parse(name: str, example: str) -> tuple[str, int] | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    who, _, step = value.rpartition(":")
    try:
        step_number = int(step)
    except ValueError:
        step_number = 0
    if not who or step_number < 1:
        raise ValueError(f"{name}={value!r}: expected {example} with step >= 1")
    return who, step_number


def from_env() -> dict[str, Any] | None:
    """{"rank": R, "step": N} from SEESAW_INJECT_WORKER_KILL="R:N" and/or {"hang_node": ID,
    "hang_step": N} from SEESAW_INJECT_NODE_HANG="ID:N"; None when neither is set."""
    fault: dict[str, Any] = {}
    kill = _parse(ENV_VAR, "<rank>:<step>, e.g. 1:20")
    if kill is not None:
        try:
            rank = int(kill[0])
        except ValueError:
            rank = -1
        if rank < 0:
            raise ValueError(f"{ENV_VAR}={os.environ[ENV_VAR]!r}: expected <rank>:<step> with rank >= 0, e.g. 1:20")
        fault.update(rank=rank, step=kill[1])
    hang = _parse(HANG_ENV_VAR, "<Ray node id>:<step>")
    if hang is not None:
        fault.update(hang_node=hang[0], hang_step=hang[1])
    return fault or None


class SelfKill:
    """Counts this worker's train steps and, at the injected one, SIGKILLs the process (its
    rank's kill) or sleeps until the process is killed from outside (its node's hang)."""

    def __init__(self, fault: dict[str, Any] | None, rank: int, resumed: bool) -> None:
        fault = fault or {}
        first = not resumed
        self.kill_at = fault["step"] if first and fault.get("rank") == rank else None
        on_node = first and fault.get("hang_node") is not None and fault["hang_node"] == ray.get_runtime_context().get_node_id()
        self.hang_at = fault["hang_step"] if on_node else None
        self.steps = 0

    def after_step(self) -> None:
        self.steps += 1
        if self.steps == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.steps == self.hang_at:
            while True:  # until the node is removed
                time.sleep(1)
