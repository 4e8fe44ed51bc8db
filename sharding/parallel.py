"""Wrapping a SeesawModel in DistributedModelParallel."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torchrec.distributed.model_parallel import DistributedModelParallel
from torchrec.distributed.types import ShardingEnv, ShardingPlan

from modules.model import SeesawModel
from sharding.optim import OptimConfig, fuse_sparse_optimizer
from sharding.planner import sharders


def shard_model(model: SeesawModel, plan: ShardingPlan, device: torch.device, optim: OptimConfig,
                pg: dist.ProcessGroup | None = None) -> DistributedModelParallel:
    """Fuses the sparse optimizer into the tables and shards `model` by `plan`.

    The embedding tables may live on the meta device: DMP allocates only each rank's shards.
    Dense parameters are replicated (DDP), rank 0's initial values broadcast to all.
    """
    fuse_sparse_optimizer(model.sparse_arch, optim)
    pg = pg or dist.GroupMember.WORLD
    return DistributedModelParallel(
        module=model,
        env=ShardingEnv.from_process_group(pg),
        device=device,
        plan=plan,
        sharders=sharders(),
    )
