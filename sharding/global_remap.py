"""One global managed-collision state, replicated on every worker (the CPU path).

TorchRec 1.8 shards managed-collision modules row-wise only and only on CUDA; on CPU its
sharder offers no sharding type. Unsharded MCH remapping does work on CPU, so each worker
keeps a full copy of the (small) remapping state and keeps the copies identical: every step
all-gathers the raw ids of all workers, feeds the same global batch in rank order to its own
`Remapper`, and keeps only its own slice of the remapped ids. Those rows are then looked up
in an ordinary (e.g. table-wise sharded) EBC table of `rows` rows.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from modules.collision import RemapOutput, Remapper


def _all_gather_padded(tensor: torch.Tensor, pg: dist.ProcessGroup | None) -> list[torch.Tensor]:
    """Every rank's 1-d `tensor` (sizes may differ), in rank order."""
    world = dist.get_world_size(pg)
    size = torch.tensor([tensor.numel()], dtype=torch.int64)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size, group=pg)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros(longest, dtype=tensor.dtype, device=tensor.device)
    padded[: tensor.numel()] = tensor
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded, group=pg)
    return [g[: int(s.item())] for g, s in zip(gathered, sizes)]


def gather_global(features: KeyedJaggedTensor,
                  pg: dist.ProcessGroup | None = None) -> tuple[KeyedJaggedTensor, list[int]]:
    """The global batch: each key's samples from rank 0, then rank 1, ...

    Args: features (KeyedJaggedTensor) this rank's samples; every rank has the same keys.
    Returns: (global KJT, [K] ids of each key that precede this rank's in the global KJT).
    """
    keys = features.keys()
    lengths = _all_gather_padded(features.lengths(), pg)
    values = _all_gather_padded(features.values(), pg)
    per_rank = [KeyedJaggedTensor(keys=keys, values=v, lengths=l) for v, l in zip(values, lengths)]
    split_lengths = [kjt.lengths().split(kjt.stride()) for kjt in per_rank]
    split_values = [kjt.values().split(kjt.length_per_key()) for kjt in per_rank]
    rank = dist.get_rank(pg)
    offsets = [sum(split_values[r][k].numel() for r in range(rank)) for k in range(len(keys))]
    global_kjt = KeyedJaggedTensor(
        keys=keys,
        values=torch.cat([split_values[r][k] for k in range(len(keys)) for r in range(len(per_rank))]),
        lengths=torch.cat([split_lengths[r][k] for k in range(len(keys)) for r in range(len(per_rank))]),
    )
    return global_kjt, offsets


class GlobalRemapper(nn.Module):
    """Wraps a `Remapper` so that its state is one global state, identical on every rank.

    Args:
        remapper: this rank's copy; every rank must build it from the same configs.
        pg: the process group of the data-parallel workers (None: the default group).
    """

    def __init__(self, remapper: Remapper, pg: dist.ProcessGroup | None = None) -> None:
        super().__init__()
        self.remapper = remapper
        self.pg = pg

    def forward(self, features: KeyedJaggedTensor) -> RemapOutput:
        """Args: features (KeyedJaggedTensor) this rank's raw ids. Returns: this rank's rows.

        `reassigned` is global (the same on every rank): each rank resets whichever of those
        rows it holds. In eval mode the remapper only looks up, which needs no other rank's
        ids, so no collective runs (a worker whose shard ran out may score padding alone).
        """
        if not self.training:
            return self.remapper(features)
        global_kjt, offsets = gather_global(features, self.pg)
        out = self.remapper(global_kjt)
        global_values = out.features.values().split(out.features.length_per_key())
        local_counts = features.length_per_key()
        local_values = [v[o: o + n] for v, o, n in zip(global_values, offsets, local_counts)]
        local = KeyedJaggedTensor(keys=features.keys(), values=torch.cat(local_values), lengths=features.lengths(),
                                  weights=features.weights_or_none())
        return RemapOutput(local, out.reassigned)
