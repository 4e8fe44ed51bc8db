"""Wrapping a SeesawModel in DistributedModelParallel."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torchrec.distributed.model_parallel import DataParallelWrapper, DistributedModelParallel
from torchrec.distributed.types import ShardingEnv, ShardingPlan

from modules.model import SeesawModel
from sharding.optim import OptimConfig, fuse_sparse_optimizer
from sharding.planner import sharders


class _Unreplicated(DataParallelWrapper):
    """Leaves the dense modules as they are: a group of one has nothing to all-reduce."""

    def wrap(self, dmp: DistributedModelParallel, env: ShardingEnv, device: torch.device) -> None:
        pass


def shard_model(model: SeesawModel, plan: ShardingPlan, device: torch.device, optim: OptimConfig,
                pg: dist.ProcessGroup | None = None, replicate_dense: bool | None = None) -> DistributedModelParallel:
    """Fuses the sparse optimizer into the tables and shards `model` by `plan`.

    The embedding tables may live on the meta device: DMP allocates only each rank's shards.
    Dense parameters are replicated (DDP), rank 0's initial values broadcast to all; in a group
    of one (`replicate_dense` None: decided by the group's size) DDP's per-step hooks and
    bucketing are skipped, since there is no other replica to reduce with.
    """
    fuse_sparse_optimizer(model.sparse_arch, optim)
    pg = pg or dist.GroupMember.WORLD
    if replicate_dense is None:
        replicate_dense = dist.get_world_size(pg) > 1
    return DistributedModelParallel(
        module=model,
        env=ShardingEnv.from_process_group(pg),
        device=device,
        plan=plan,
        sharders=sharders(),
        data_parallel_wrapper=None if replicate_dense else _Unreplicated(),
    )
