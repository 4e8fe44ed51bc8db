"""Moving between a full (unsharded) state dict and a sharded model's local shards.

Used to start a sharded model from exactly the weights of an unsharded one (the TorchRec way
of testing sharding: compare against the unsharded model), and to compare them after a step.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn
from torch.distributed._shard.sharded_tensor import ShardedTensor


def local_pieces(value: torch.Tensor) -> Iterator[tuple[tuple[slice, ...], torch.Tensor]]:
    """(index into the full tensor, local tensor) for each piece this rank holds."""
    if isinstance(value, ShardedTensor):
        for shard in value.local_shards():
            offsets, sizes = shard.metadata.shard_offsets, shard.metadata.shard_sizes
            yield tuple(slice(o, o + s) for o, s in zip(offsets, sizes)), shard.tensor
    elif hasattr(value, "to_local") and hasattr(value, "device_mesh"):  # DTensor
        raise NotImplementedError("DTensor shards are not produced by the sharding types Seesaw plans")
    else:
        yield tuple(slice(0, s) for s in value.shape), value


@torch.no_grad()
def load_full_state(model: nn.Module, full_state: dict[str, torch.Tensor]) -> None:
    """Copies the matching slice of `full_state` into every local shard and replica of `model`."""
    state = model.state_dict()
    missing = sorted(set(state) - set(full_state))
    if missing:
        raise KeyError(f"full state lacks {missing}")
    for name, value in state.items():
        for index, local in local_pieces(value):
            local.copy_(full_state[name][index])


def local_mismatches(model: nn.Module, full_state: dict[str, torch.Tensor], atol: float, rtol: float) -> list[str]:
    """Names of entries whose local pieces differ from `full_state` beyond the tolerance."""
    bad = []
    for name, value in model.state_dict().items():
        for index, local in local_pieces(value):
            if not torch.allclose(local, full_state[name][index], atol=atol, rtol=rtol):
                err = (local - full_state[name][index]).abs().max().item()
                bad.append(f"{name}{list((s.start, s.stop) for s in index)}: max abs diff {err:.3g}")
    return bad
