"""The function each Ray Train worker runs, importable without torch or TorchRec.

Ray pickles a module-level function by reference, and whoever unpickles it imports its
module. The driver and a Tune trial's process only hand the function to Ray Train, so they
import it from here; the loop itself (torch, TorchRec, FBGEMM: 2-3 s of CPU per process on
the 2-core machine) is imported in the worker, when the worker calls it.
"""

from __future__ import annotations

from typing import Any


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """`training.loop.train_loop_per_worker`, imported on the worker that runs it."""
    from ray_jobs.training.loop import train_loop_per_worker as run

    run(loop_config)
