"""Keeps every worker on the same step: TorchRec's collectives hang if one worker skips one.

Shards of a streamed data set need not hold equal rows. In training, all workers stop as soon
as any of them runs out (the few surplus rows of longer shards wait for the next epoch). In
evaluation nothing may be dropped: workers that ran out feed zero-weight padding batches until
every worker is done.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def lockstep(batches: Iterable[T], pad: Callable[[], T] | None = None,
             group: dist.ProcessGroup | None = None) -> Iterator[T]:
    """Yields batches while every worker has one (pad=None) or while any worker has one (pad)."""
    if not dist.is_initialized() or dist.get_world_size(group) == 1:
        yield from batches  # alone, there is no one to keep in step with: no collective per batch
        return
    it = iter(batches)
    op = dist.ReduceOp.MIN if pad is None else dist.ReduceOp.MAX
    while True:
        batch = next(it, None)
        flag = torch.tensor([0 if batch is None else 1], dtype=torch.int32)
        dist.all_reduce(flag, op=op, group=group)
        if flag.item() == 0:
            return
        yield batch if batch is not None else pad()  # type: ignore[misc]
