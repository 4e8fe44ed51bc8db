"""Per-rank body for the step-optimisation test (imported by a spawned process)."""

from __future__ import annotations

import numpy as np
import torch
from torch.distributed._shard.sharded_tensor import ShardedTensor

from ray_jobs.benchmarks.step_breakdown import VARIANTS, build_step
from ray_jobs.data.collate import Collator
from ray_jobs.training.epoch import train_epoch
from tests.factories import random_table, tiny_spec


def train_every_variant(rank: int, world_size: int, arch: str, steps: int) -> dict[str, dict[str, np.ndarray]]:
    """Each step variant trained `steps` steps on the same batches: its final state dict (and,
    under "untrained", the state every variant starts from)."""
    spec = tiny_spec()
    out = {}
    for variant in VARIANTS:
        model, sharded, optimizer = build_step(spec, arch, 32, variant)
        out.setdefault("untrained", _plain_state(sharded))
        collate = Collator(spec, model.kjt_keys)
        batches = [collate(random_table(spec, 32, seed=step)) for step in range(steps)]
        stats = train_epoch(sharded, optimizer, batches, torch.device("cpu"))
        assert stats.steps == steps
        out[variant.name] = _plain_state(sharded)
    return out


def _plain_state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """State dict as NumPy copies (tensors would travel to the parent as shared-memory handles
    that die with this process), sharded tables as their local shards, flattened."""
    def plain(value):
        if isinstance(value, ShardedTensor):
            value = torch.cat([shard.tensor.detach().flatten() for shard in value.local_shards()])
        return value.detach().numpy().copy()
    return {k: plain(v) for k, v in model.state_dict().items()}
