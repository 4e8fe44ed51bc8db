"""STEM-Net (Su et al., AAAI 2024) and its multi-embedding baselines ME-MMoE and ME-PLE.

All three give their experts separate embedding tables (table sets) and differ only in what a
task's gate sees and where its gradient may flow:
- `stem`: shared experts read the shared set; task t's experts read task t's set. Task t's gate
  mixes ALL experts, but other tasks' specific experts enter through a stop-gradient
  (All-Forward Task-specific-Backward), so task t's loss never trains task j's tables/experts.
- `me_ple`: the same experts and sets; task t's gate sees only its own and the shared experts
  (task-specific forward and backward; one CGC extraction layer).
- `me_mmoe`: expert i reads set "expert{i}"; every gate mixes every expert, all-forward
  all-backward.

Features not chosen by `task_specific_features` have one table, read by every expert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import nn

from modules.dense.base import SHARED_SET, ArchOutput, DenseArch, TableSet, concat, embedding_key, input_width, mlp, tower
from modules.dense.experts import ExpertBank, mix
from modules.dense.registry import register
from modules.spec import DatasetSpec
from modules.strict import ConfigError

SpecificFeatures = Literal["all", "user", "user_item_id"]


def specific_features(spec: DatasetSpec, mode: SpecificFeatures) -> tuple[str, ...]:
    """The features that get one table per task (or per expert).

    "all": every feature with `task_specific`; "user": the user-role features; "user_item_id": the
    first user-role and the first item-role feature.
    """
    if mode == "all":
        names = tuple(f.name for f in spec.sparse_features if f.task_specific)
    elif mode == "user":
        names = tuple(f.name for f in spec.features_with_role("user"))
    else:
        users, items = spec.features_with_role("user"), spec.features_with_role("item")
        if not users or not items:
            raise ConfigError("task_specific_features='user_item_id' needs a user and an item feature")
        names = (users[0].name, items[0].name)
    if not names:
        raise ConfigError(f"task_specific_features={mode!r} selects no feature of the spec")
    return names


def set_keys(spec: DatasetSpec, specific: Sequence[str], table_set: str) -> tuple[str, ...]:
    """Embedding keys an input of `table_set` reads: its own key for specific features, else shared."""
    return tuple(embedding_key(f, table_set) if f in specific else f for f in spec.feature_names)


@dataclass(frozen=True)
class STEMConfig:
    """Shared by `stem` and `me_ple` (official STEM: experts (512, 512, 512), 8 shared, 1 specific,
    towers (128, 64), gate (128, 64); the defaults are CPU-sized)."""

    task_specific_features: SpecificFeatures = "all"
    expert_hidden: tuple[int, ...] = (128, 64)
    num_shared_experts: int = 2
    num_specific_experts: int = 1
    gate: tuple[int, ...] = (64,)
    tower: tuple[int, ...] = (64,)
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.num_shared_experts < 0 or self.num_specific_experts < 1 or not self.expert_hidden:
            raise ConfigError("stem: num_shared_experts >= 0, num_specific_experts >= 1, expert_hidden non-empty")


@dataclass(frozen=True)
class MEMMoEConfig:
    """`expert_specific_features` picks the features that get one table per expert."""

    expert_specific_features: SpecificFeatures = "all"
    num_experts: int = 4
    expert_hidden: tuple[int, ...] = (128, 64)
    gate: tuple[int, ...] = (64,)
    tower: tuple[int, ...] = (64,)
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.num_experts < 1 or not self.expert_hidden:
            raise ConfigError("me_mmoe: num_experts must be >= 1 and expert_hidden non-empty")


class MultiEmbeddingMoE(DenseArch):
    """Experts that each read one table set, per-task gates over a chosen subset of them.

    Args:
        specific: features with per-set tables; the rest are read from the shared set.
        expert_sets: [E] the table set each expert reads (concat of its keys + dense).
        gate_sets: [T] the table sets whose embeddings, summed element-wise (+ dense), feed gate t.
        visible: [T, V] expert ids each task's gate mixes.
        frozen: [T, V] bool, True where that expert's output enters the task by stop-gradient;
            None = all backward.
    """

    def __init__(self, spec: DatasetSpec, config: STEMConfig | MEMMoEConfig, specific: tuple[str, ...],
                 expert_sets: Sequence[str], gate_sets: Sequence[Sequence[str]], visible: torch.Tensor,
                 frozen: torch.Tensor | None) -> None:
        super().__init__(spec, config)
        width = input_width(spec, spec.feature_names)
        self.expert_sets = tuple(expert_sets)
        self.gate_sets = tuple(tuple(sets) for sets in gate_sets)
        used = dict.fromkeys((*self.expert_sets, *(s for sets in self.gate_sets for s in sets)))
        self.input_keys = {s: set_keys(spec, specific, s) for s in used}
        self.experts = ExpertBank(width, len(self.expert_sets), config.expert_hidden)
        self.register_buffer("visible", visible, persistent=False)
        self.register_buffer("frozen", frozen, persistent=False)
        gate_out = config.gate[-1] if config.gate else width
        self.gates = nn.ModuleList(
            nn.Sequential(mlp(width, config.gate, config.dropout), nn.Linear(gate_out, visible.shape[1]))
            for _ in spec.tasks
        )
        self.towers = nn.ModuleList(tower(self.experts.out_dim, config.tower, config.dropout) for _ in spec.tasks)

    def forward(self, embeddings: dict[str, torch.Tensor], dense: torch.Tensor, domain: torch.Tensor) -> ArchOutput:
        parts = {s: concat(embeddings, keys) for s, keys in self.input_keys.items()}  # [B, sum d] each
        x = torch.stack([torch.cat([parts[s], dense], dim=-1) for s in self.expert_sets])  # [E, B, W]
        out = self.experts.forward_all(x)  # [B, E, D]
        logits = []
        for t, (gate, head) in enumerate(zip(self.gates, self.towers)):
            chosen = out.index_select(1, self.visible[t])  # [B, V, D]
            if self.frozen is not None:
                chosen = torch.where(self.frozen[t].view(1, -1, 1), chosen.detach(), chosen)
            gate_in = torch.cat([sum(parts[s] for s in self.gate_sets[t]), dense], dim=-1)  # [B, W]
            gate_logits = gate(gate_in)  # [B, V]
            logits.append(head(mix(chosen, gate_logits)))
        return ArchOutput(torch.cat(logits, dim=-1))


class TaskSetMoE(MultiEmbeddingMoE):
    """STEM / ME-PLE: the shared set (every feature) + one set per task (the specific features).

    Experts: `num_shared_experts` on the shared set, then `num_specific_experts` per task on its
    set; gate t reads task t's + the shared embeddings (summed) and the dense features.
    all_forward=True (STEM): gate t mixes every expert, other tasks' specific ones by stop-gradient.
    all_forward=False (ME-PLE): gate t mixes only the shared experts and task t's own.
    """

    Config = STEMConfig

    @classmethod
    def table_sets(cls, spec: DatasetSpec, config: STEMConfig) -> tuple[TableSet, ...]:
        specific = specific_features(spec, config.task_specific_features)
        return (TableSet(SHARED_SET, spec.feature_names), *(TableSet(task, specific) for task in spec.tasks))

    def __init__(self, spec: DatasetSpec, config: STEMConfig, all_forward: bool) -> None:
        sets = [SHARED_SET] * config.num_shared_experts
        owner = [-1] * config.num_shared_experts  # -1 = shared, else the owning task
        for t, task in enumerate(spec.tasks):
            sets += [task] * config.num_specific_experts
            owner += [t] * config.num_specific_experts
        owner_t = torch.tensor(owner)
        own = (owner_t == -1) | (owner_t == torch.arange(spec.num_tasks).unsqueeze(1))  # [T, E]
        if all_forward:
            visible, frozen = torch.arange(len(sets)).expand(spec.num_tasks, -1).contiguous(), ~own
        else:
            visible, frozen = torch.stack([row.nonzero().squeeze(1) for row in own]), None
        gate_sets = [(task, SHARED_SET) for task in spec.tasks]
        super().__init__(spec, config, specific_features(spec, config.task_specific_features),
                         sets, gate_sets, visible, frozen)


@register("stem")
class STEM(TaskSetMoE):
    """All-Forward Task-specific-Backward (see `TaskSetMoE`)."""

    def __init__(self, spec: DatasetSpec, config: STEMConfig) -> None:
        super().__init__(spec, config, all_forward=True)


@register("me_ple")
class MEPLE(TaskSetMoE):
    """Multi-embedding PLE, one CGC layer: task-specific forward and backward (see `TaskSetMoE`)."""

    def __init__(self, spec: DatasetSpec, config: STEMConfig) -> None:
        super().__init__(spec, config, all_forward=False)


@register("me_mmoe")
class MEMMoE(MultiEmbeddingMoE):
    """Multi-embedding MMoE: expert i reads its own set "expert{i}"; every gate mixes every expert,
    all-backward. Choice: the gates read the shared set (a gate embedding set of their own) rather
    than a mean of the expert inputs, so no gate trains an expert's tables."""

    Config = MEMMoEConfig

    @classmethod
    def table_sets(cls, spec: DatasetSpec, config: MEMMoEConfig) -> tuple[TableSet, ...]:
        specific = specific_features(spec, config.expert_specific_features)
        experts = (TableSet(f"expert{i}", specific) for i in range(config.num_experts))
        return (TableSet(SHARED_SET, spec.feature_names), *experts)

    def __init__(self, spec: DatasetSpec, config: MEMMoEConfig) -> None:
        sets = [f"expert{i}" for i in range(config.num_experts)]
        visible = torch.arange(config.num_experts).expand(spec.num_tasks, -1).contiguous()
        gate_sets = [(SHARED_SET,)] * spec.num_tasks
        super().__init__(spec, config, specific_features(spec, config.expert_specific_features),
                         sets, gate_sets, visible, None)
