"""Deliberate fault injection for chaos testing: a train worker that SIGKILLs itself.

    SEESAW_INJECT_WORKER_KILL=<rank>:<step> python -m ray_jobs.train --config job.yaml

The driver reads the variable (`from_env`) and passes it to the workers in the
train_loop_config. Rank <rank> then kills its own process with SIGKILL right after its
<step>-th train step, counted across epochs (a checkpoint due at that step is reported first),
and only on an attempt that restored no checkpoint: the restarted group trains on. The process
dies as a real failure would (no Python cleanup, no error raised), so Ray Train's FailureConfig
(`workers.max_failures`) must detect it, restart the group and resume from the latest committed
checkpoint. Unset (the default), nothing happens.
"""

from __future__ import annotations

import os
import signal

ENV_VAR = "SEESAW_INJECT_WORKER_KILL"


def from_env() -> dict[str, int] | None:
    """{"rank": R, "step": N} from SEESAW_INJECT_WORKER_KILL="R:N", or None when unset."""
    value = os.environ.get(ENV_VAR, "").strip()
    if not value:
        return None
    try:
        rank, step = (int(part) for part in value.split(":"))
    except ValueError:
        raise ValueError(f"{ENV_VAR}={value!r}: expected <rank>:<step>, e.g. 1:20") from None
    if rank < 0 or step < 1:
        raise ValueError(f"{ENV_VAR}={value!r}: need rank >= 0 and step >= 1")
    return {"rank": rank, "step": step}


class SelfKill:
    """Counts this worker's train steps and SIGKILLs the process at the injected one."""

    def __init__(self, fault: dict[str, int] | None, rank: int, resumed: bool) -> None:
        self.kill_at = fault["step"] if fault and fault["rank"] == rank and not resumed else None
        self.steps = 0

    def after_step(self) -> None:
        self.steps += 1
        if self.steps == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
