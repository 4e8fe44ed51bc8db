"""Sharding plans: which sharding types each device allows, and the TorchRec planner call.

On CPU, TorchRec's fused kernels shard table-wise or column-wise only (row-wise needs CUDA).
On CUDA, tables with at least `row_wise_min_rows` rows are forced row-wise so that no single
GPU holds a huge table; the planner chooses freely for the rest.
"""

from __future__ import annotations

from typing import Literal

import torch.distributed as dist
from torch import nn
from torchrec.distributed.embedding_types import EmbeddingComputeKernel
from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
from torchrec.distributed.planner import EmbeddingShardingPlanner, Topology
from torchrec.distributed.planner.enumerators import EmbeddingEnumerator
from torchrec.distributed.planner.stats import NoopEmbeddingStats
from torchrec.distributed.planner.storage_reservations import FixedPercentageStorageReservation
from torchrec.distributed.planner.types import KernelConfig, ParameterConstraints, TopologyFactory, TrainerConfig
from torchrec.distributed.types import ShardingPlan, ShardingType
from torchrec.modules.embedding_configs import EmbeddingBagConfig

from sharding.config import PlannerConfig

DeviceType = Literal["cpu", "cuda"]

CPU_SHARDING_TYPES: tuple[str, ...] = (ShardingType.TABLE_WISE.value, ShardingType.COLUMN_WISE.value)
CUDA_SHARDING_TYPES: tuple[str, ...] = (
    ShardingType.TABLE_WISE.value,
    ShardingType.ROW_WISE.value,
    ShardingType.TABLE_ROW_WISE.value,
    ShardingType.COLUMN_WISE.value,
)
GIB = 1024**3


def allowed_sharding_types(table: EmbeddingBagConfig, device: DeviceType, config: PlannerConfig) -> list[str]:
    """The sharding types the planner may consider for `table` on `device`."""
    if config.sharding_types is not None:
        bad = [t for t in config.sharding_types if device == "cpu" and t not in CPU_SHARDING_TYPES]
        if bad:
            raise ValueError(f"sharding type(s) {bad} are not available on CPU; use {CPU_SHARDING_TYPES}")
        return list(config.sharding_types)
    if device == "cpu":
        return list(CPU_SHARDING_TYPES)
    if table.num_embeddings >= config.row_wise_min_rows:
        return [ShardingType.ROW_WISE.value]
    return list(CUDA_SHARDING_TYPES)


def constraints_for(tables: list[EmbeddingBagConfig], device: DeviceType,
                    config: PlannerConfig = PlannerConfig()) -> dict[str, ParameterConstraints]:
    """Per-table planner constraints: allowed sharding types and the fused FBGEMM kernel."""
    return {
        t.name: ParameterConstraints(
            sharding_types=allowed_sharding_types(t, device, config),
            compute_kernels=[EmbeddingComputeKernel.FUSED.value],
        )
        for t in tables
    }


def _in_order(values: list[str], *orders: list[str]) -> list[str]:
    """`values` ordered by the first of `orders` that holds each (the rest last, by name)."""
    def rank(value: str) -> tuple[int, int, str]:
        for i, order in enumerate(orders):
            if value in order:
                return i, order.index(value), value
        return len(orders), 0, value

    return sorted(values, key=rank)


class OrderedEnumerator(EmbeddingEnumerator):
    """TorchRec's enumerator, its options in a fixed order.

    TorchRec 1.8 intersects a table's constrained and allowed sharding types (and compute
    kernels) as Python sets. So the options' order changed with the string hash seed from one
    process to the next, and with it the planner's pick between options it estimates equal.
    The KuaiRand tables on one CPU rank, for instance, were planned table-wise under some
    PYTHONHASHSEEDs and column-wise under others. Here the options come in the constraints'
    order (`allowed_sharding_types`: table-wise first), then in TorchRec's.
    """

    def _filter_sharding_types(self, name: str, allowed_sharding_types: list[str], sharder_key: str = "") -> list[str]:
        kept = super()._filter_sharding_types(name, allowed_sharding_types, sharder_key)
        constrained = (self._constraints or {}).get(name)
        return _in_order(kept, list(constrained.sharding_types or []) if constrained else [], allowed_sharding_types)

    def _filter_compute_kernels(self, name: str, allowed_compute_kernels: list[str], sharding_type: str) -> list[str]:
        kept = super()._filter_compute_kernels(name, allowed_compute_kernels, sharding_type)
        constrained = (self._constraints or {}).get(name)
        return _in_order(kept, list(constrained.compute_kernels or []) if constrained else [], allowed_compute_kernels)


# Each device's memory the planner leaves to dense parameters, activations and the input batches.
RESERVED_FRACTION = 0.15


def make_topology(world_size: int, device: DeviceType, local_world_size: int | None = None,
                  hbm_gb: float | None = None, ddr_gb: float | None = None) -> Topology:
    """A planner topology; it need not exist (plan previews for clusters you don't have)."""
    trainer = TrainerConfig(world_size=world_size, local_world_size=local_world_size or world_size,
                            hbm_cap_bytes=int(hbm_gb * GIB) if hbm_gb is not None else None,
                            ddr_cap_bytes=int(ddr_gb * GIB) if ddr_gb is not None else None)
    return TopologyFactory.create_topology(trainer, kernel_config=KernelConfig(compute_device=device))


def sharders() -> list:
    """The sharders Seesaw uses: TorchRec's EBC sharder (fused optimizer from the tables)."""
    return [EmbeddingBagCollectionSharder()]


def plan_sharding(model: nn.Module, tables: list[EmbeddingBagConfig], topology: Topology, batch_size: int,
                  config: PlannerConfig = PlannerConfig(), pg: dist.ProcessGroup | None = None) -> ShardingPlan:
    """Plans `model`'s embedding tables; with `pg`, rank 0 plans and broadcasts (collective_plan).
    The same tables, topology and config give the same plan in every process (`OrderedEnumerator`)."""
    constraints = constraints_for(tables, topology.compute_device, config)  # type: ignore[arg-type]
    planner = EmbeddingShardingPlanner(
        topology=topology,
        batch_size=batch_size,
        constraints=constraints,
        enumerator=OrderedEnumerator(topology=topology, batch_size=batch_size, constraints=constraints),
        # TorchRec's recommendation: a fixed share of each device's memory held back (the default
        # heuristic estimates dense tensors, which a model built on the meta device does not have)
        storage_reservation=FixedPercentageStorageReservation(percentage=RESERVED_FRACTION),
        stats=NoopEmbeddingStats(),  # the plan is shown once, as sharding.preview's compact table
        debug=False,
    )
    if pg is not None:
        return planner.collective_plan(model, sharders(), pg)
    return planner.plan(model, sharders())

