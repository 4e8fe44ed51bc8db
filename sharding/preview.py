"""Plan previews: the sharding plan and per-rank embedding memory for a cluster you don't have.

The model is built on the meta device and planned against a made-up topology with no process
group, so a laptop can answer "does this fit on 64 x 80 GB, and how is it spread?" before
anyone pays for GPUs. Memory is read from the plan's shard metadata, not from the planner's
estimates, so the per-rank numbers add up exactly to the size of the tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torchrec.distributed.planner.types import PlannerError
from torchrec.distributed.types import EnumerableShardingSpec, ShardingPlan
from torchrec.modules.embedding_configs import EmbeddingBagConfig, data_type_to_dtype

from modules.model import SeesawModel, embedding_tables
from modules.spec import DatasetSpec
from sharding.planner import GIB, DeviceType, PlannerConfig, make_topology, plan_sharding

OPTIMIZER_BYTES_PER_ROW = 4  # fused row-wise Adagrad: one fp32 accumulator per row of each shard


class PlanDoesNotFit(ValueError):
    """The planner found no placement of the tables within the given per-rank memory."""


@dataclass(frozen=True)
class ShardMemory:
    """One shard of one table on one rank: rows x cols of weights plus its optimizer state."""

    table: str
    rank: int
    rows: int
    cols: int
    weight_bytes: int
    optimizer_bytes: int


@dataclass(frozen=True)
class TablePlacement:
    """Where one table went: sharding type, kernel, ranks, full size and its shards."""

    name: str
    sharding_type: str
    compute_kernel: str
    ranks: tuple[int, ...]
    rows: int
    dim: int
    shards: tuple[ShardMemory, ...]


@dataclass(frozen=True)
class RankMemory:
    rank: int
    weight_bytes: int
    optimizer_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.optimizer_bytes


@dataclass(frozen=True)
class PlanPreview:
    """A plan summarised for people: tables, per-rank memory and each rank's capacity."""

    device: DeviceType
    world_size: int
    capacity_bytes: int
    tables: tuple[TablePlacement, ...]

    def rank_memory(self) -> tuple[RankMemory, ...]:
        """Every rank, including ranks that hold no shard (they show 0)."""
        weights = [0] * self.world_size
        optimizer = [0] * self.world_size
        for table in self.tables:
            for shard in table.shards:
                weights[shard.rank] += shard.weight_bytes
                optimizer[shard.rank] += shard.optimizer_bytes
        return tuple(RankMemory(r, weights[r], optimizer[r]) for r in range(self.world_size))

    @property
    def total_bytes(self) -> int:
        return sum(s.weight_bytes + s.optimizer_bytes for t in self.tables for s in t.shards)


def table_bytes(table: EmbeddingBagConfig) -> int:
    """Weights + row-wise Adagrad state of an unsharded table (what the shards add up to)."""
    element = data_type_to_dtype(table.data_type).itemsize
    return table.num_embeddings * (table.embedding_dim * element + OPTIMIZER_BYTES_PER_ROW)


def summarize_plan(plan: ShardingPlan, tables: list[EmbeddingBagConfig], device: DeviceType,
                   world_size: int, capacity_bytes: int) -> PlanPreview:
    """Reads every table's shard metadata out of `plan`.

    A column-wise shard is its own FBGEMM table with its own per-row accumulator, so a table
    split into k column slices carries k x rows optimizer floats.
    """
    by_name = {t.name: t for t in tables}
    placements = []
    for module_plan in plan.plan.values():
        for name, sharding in module_plan.items():  # type: ignore[union-attr]
            table = by_name[name]
            spec = sharding.sharding_spec
            if not isinstance(spec, EnumerableShardingSpec):
                raise ValueError(f"table {name}: expected shard metadata in the plan, got {spec!r}")
            element = data_type_to_dtype(table.data_type).itemsize
            shards = tuple(
                ShardMemory(name, s.placement.rank(), s.shard_sizes[0], s.shard_sizes[1],  # type: ignore[union-attr]
                            s.shard_sizes[0] * s.shard_sizes[1] * element,
                            s.shard_sizes[0] * OPTIMIZER_BYTES_PER_ROW)
                for s in spec.shards
            )
            placements.append(TablePlacement(name, sharding.sharding_type, sharding.compute_kernel,
                                             tuple(sharding.ranks or ()), table.num_embeddings,
                                             table.embedding_dim, shards))
    return PlanPreview(device, world_size, capacity_bytes, tuple(placements))


def _does_not_fit_message(tables: list[EmbeddingBagConfig], world_size: int, capacity_bytes: int,
                          device: DeviceType, reason: str) -> str:
    memory = "HBM" if device == "cuda" else "host memory"
    total = sum(table_bytes(t) for t in tables)
    largest = sorted(tables, key=table_bytes, reverse=True)[:5]
    lines = [
        f"the embedding tables do not fit: they need {total / GIB:.2f} GiB (weights + row-wise Adagrad), "
        f"the cluster has {world_size} x {capacity_bytes / GIB:.2f} GiB {memory} = "
        f"{world_size * capacity_bytes / GIB:.2f} GiB, of which the planner also reserves a share "
        "for dense parameters, activations and buffers.",
        "largest tables:",
        *(f"  {t.name}: {t.num_embeddings:,} x {t.embedding_dim} = {table_bytes(t) / GIB:.2f} GiB" for t in largest),
        *(["on CPU a table is only split by columns (into 128-dim slices), so every slice, all its rows, "
           "must fit on one rank."] if device == "cpu" else []),
        "use more ranks, more memory per rank, smaller embedding dims or fewer rows (hashing).",
        f"planner: {reason.splitlines()[0] if reason else 'no reason given'}",
    ]
    return "\n".join(lines)


def preview_plan(spec: DatasetSpec, arch: str, arch_params: dict[str, Any] | None, world_size: int,
                 device: DeviceType, batch_size: int, local_world_size: int | None = None,
                 hbm_gb: float | None = None, ddr_gb: float | None = None,
                 config: PlannerConfig = PlannerConfig()) -> PlanPreview:
    """Plans `arch` on `spec` for a hypothetical cluster; raises PlanDoesNotFit when it can't.

    `batch_size` is per rank, as in the job config; it only steers the planner's cost model.
    """
    model = SeesawModel(spec, arch, arch_params, device=torch.device("meta"))
    tables = embedding_tables(spec, model.table_sets)
    topology = make_topology(world_size, device, local_world_size, hbm_gb=hbm_gb, ddr_gb=ddr_gb)
    storage = topology.devices[0].storage
    capacity = storage.hbm if device == "cuda" else storage.ddr
    try:
        plan = plan_sharding(model, tables, topology, batch_size, config)
    except PlannerError as exc:
        raise PlanDoesNotFit(_does_not_fit_message(tables, world_size, capacity, device, str(exc))) from exc
    return summarize_plan(plan, tables, device, world_size, capacity)


def _ranks_text(ranks: tuple[int, ...]) -> str:
    """Compact rank list: consecutive runs as a-b (64 ranks fit in one column)."""
    runs: list[list[int]] = []
    for r in sorted(set(ranks)):
        if runs and r == runs[-1][1] + 1:
            runs[-1][1] = r
        else:
            runs.append([r, r])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths)),
                      *(fmt.format(*r) for r in rows)])


def format_preview(preview: PlanPreview) -> str:
    """The tables and the per-rank memory as plain-text tables (GiB, % of each rank's memory)."""
    tables = _table(
        ["table", "sharding", "kernel", "ranks", "rows x dim", "GiB"],
        [[t.name, t.sharding_type, t.compute_kernel, _ranks_text(t.ranks), f"{t.rows:,} x {t.dim}",
          f"{sum(s.weight_bytes + s.optimizer_bytes for s in t.shards) / GIB:.3f}"] for t in preview.tables],
    )
    cap = preview.capacity_bytes
    ranks = preview.rank_memory()
    memory = _table(
        ["rank", "weights GiB", "optimizer GiB", "total GiB", "% of memory"],
        [[str(r.rank), f"{r.weight_bytes / GIB:.3f}", f"{r.optimizer_bytes / GIB:.3f}",
          f"{r.total_bytes / GIB:.3f}", f"{100 * r.total_bytes / cap:.1f}"] for r in ranks]
        + [["all", f"{sum(r.weight_bytes for r in ranks) / GIB:.3f}",
            f"{sum(r.optimizer_bytes for r in ranks) / GIB:.3f}", f"{preview.total_bytes / GIB:.3f}", ""]],
    )
    kind = "HBM" if preview.device == "cuda" else "host memory"
    return (f"sharding plan: {preview.world_size} {preview.device} ranks, {cap / GIB:.1f} GiB {kind} each\n\n"
            f"{tables}\n\nembedding memory per rank (weights + row-wise Adagrad state):\n{memory}")
