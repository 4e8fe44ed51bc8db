"""Runs a test function in N spawned processes joined by a gloo process group (no Ray)."""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import traceback
from typing import Any, Callable


def _worker(rank: int, world_size: int, init_file: str, fn: Callable[..., Any], args: tuple, queue: Any) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
        result = fn(rank, world_size, *args)
        queue.put((rank, None, result))
    except BaseException:  # noqa: BLE001  (report any failure to the parent)
        queue.put((rank, traceback.format_exc(), None))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run_distributed(fn: Callable[..., Any], world_size: int = 2, *args: Any, timeout: float = 240.0) -> list[Any]:
    """Calls fn(rank, world_size, *args) on every rank; returns the results by rank.

    `fn` must be importable (a module-level function). A failure on any rank fails the caller
    with that rank's traceback.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "pg_init")
        procs = [ctx.Process(target=_worker, args=(r, world_size, init_file, fn, args, queue)) for r in range(world_size)]
        for p in procs:
            p.start()
        results: dict[int, Any] = {}
        try:
            for _ in procs:
                rank, error, result = queue.get(timeout=timeout)
                if error is not None:
                    raise AssertionError(f"rank {rank} failed:\n{error}")
                results[rank] = result
        finally:
            for p in procs:
                p.join(timeout=10)
                if p.is_alive():
                    p.kill()
    return [results[r] for r in range(world_size)]
