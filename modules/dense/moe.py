"""Multi-task mixture-of-experts baselines: OMoE, MMoE (Ma et al., KDD 2018), PLE (Tang et al.,
RecSys 2020).

All read one input, every sparse embedding ++ the dense features (the domain id is an ordinary
sparse feature, the paper's "-MD" setup), and end in one tower per task. With `ppnet=True`
the towers are PEPNet's PPNet towers (prior = user/item/author embeddings), which makes PPNet
pluggable on these backbones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from modules.strict import ConfigError
from modules.dense.base import ArchOutput, DenseArch, concat, input_width, tower
from modules.dense.experts import ExpertBank, mix
from modules.dense.pepnet import PPNetTowers, prior_features
from modules.dense.registry import register
from modules.spec import DatasetSpec


@dataclass(frozen=True)
class TowerConfig:
    """Task towers shared by every config below; `ppnet*` switch to PPNet towers."""

    tower: tuple[int, ...] = (64,)
    dropout: float = 0.0
    ppnet: bool = False
    ppnet_gamma: float = 2.0
    ppnet_gate_hidden: int = 64


@dataclass(frozen=True)
class MoEConfig(TowerConfig):
    num_experts: int = 4
    expert_hidden: tuple[int, ...] = (128, 64)

    def __post_init__(self) -> None:
        if self.num_experts < 1 or not self.expert_hidden:
            raise ConfigError("num_experts must be >= 1 and expert_hidden non-empty")


@dataclass(frozen=True)
class PLEConfig(TowerConfig):
    num_levels: int = 2
    num_shared_experts: int = 2
    num_specific_experts: int = 2
    expert_hidden: tuple[int, ...] = (128, 64)

    def __post_init__(self) -> None:
        if min(self.num_levels, self.num_shared_experts, self.num_specific_experts) < 1 or not self.expert_hidden:
            raise ConfigError("PLE needs num_levels, num_shared_experts, num_specific_experts >= 1 "
                             "and a non-empty expert_hidden")


class _MultiTaskArch(DenseArch):
    """Input concatenation and task towers (plain or PPNet) common to the MoE backbones."""

    def __init__(self, spec: DatasetSpec, config: TowerConfig, tower_in: int) -> None:
        super().__init__(spec, config)
        if config.ppnet:
            self.prior_features = prior_features(spec)
            prior_dim = input_width(spec, self.prior_features, with_dense=False)
            self.towers = PPNetTowers(tower_in, prior_dim, spec.num_tasks, config.tower,
                                      config.ppnet_gate_hidden, config.ppnet_gamma, config.dropout)
        else:
            self.towers = nn.ModuleList(tower(tower_in, config.tower, config.dropout) for _ in spec.tasks)

    def inputs(self, embeddings: dict[str, torch.Tensor], dense: torch.Tensor) -> torch.Tensor:
        """All sparse embeddings ++ dense: [B, D]."""
        return concat(embeddings, self.spec.feature_names, dense)

    def logits(self, task_inputs: list[torch.Tensor], embeddings: dict[str, torch.Tensor]) -> torch.Tensor:
        """task_inputs: T tensors [B, D_tower] -> logits [B, T]."""
        if self.config.ppnet:
            return self.towers(task_inputs, concat(embeddings, self.prior_features))
        return torch.cat([t(x) for t, x in zip(self.towers, task_inputs)], dim=-1)


class _GatedMixture(_MultiTaskArch):
    """E shared experts mixed by `num_gates` softmax gates over the input (1: OMoE, T: MMoE)."""

    Config = MoEConfig

    def __init__(self, spec: DatasetSpec, config: MoEConfig, num_gates: int) -> None:
        super().__init__(spec, config, config.expert_hidden[-1])
        width = input_width(spec, spec.feature_names)
        self.num_gates = num_gates
        self.experts = ExpertBank(width, config.num_experts, config.expert_hidden)
        self.gates = nn.Linear(width, num_gates * config.num_experts)

    def forward(self, embeddings: dict[str, torch.Tensor], dense: torch.Tensor, domain: torch.Tensor) -> ArchOutput:
        x = self.inputs(embeddings, dense)
        expert_out = self.experts.forward_all(x)  # [B, E, D]
        gate_logits = self.gates(x).view(x.shape[0], self.num_gates, -1)  # [B, G, E]
        mixed = [mix(expert_out, gate_logits[:, g]) for g in range(self.num_gates)]
        if self.num_gates == 1:
            mixed = mixed * self.spec.num_tasks
        return ArchOutput(self.logits(mixed, embeddings))


@register("omoe")
class OMoE(_GatedMixture):
    """One-gate MoE: a single softmax gate mixes the experts for every task."""

    def __init__(self, spec: DatasetSpec, config: MoEConfig) -> None:
        super().__init__(spec, config, num_gates=1)


@register("mmoe")
class MMoE(_GatedMixture):
    """Multi-gate MoE: one softmax gate per task over the shared experts."""

    def __init__(self, spec: DatasetSpec, config: MoEConfig) -> None:
        super().__init__(spec, config, num_gates=spec.num_tasks)


class PLELevel(nn.Module):
    """One extraction level: shared + task-specific experts, task gates, optional shared gate.

    All S + T*K experts live in one ExpertBank; expert e reads input `owner[e]` (0: the shared
    input, 1 + t: task t's input). Task t's gate mixes the S shared and its own K experts over
    task t's input; the shared gate (non-final levels) mixes all experts over the shared input.
    Shapes: inputs [T + 1, B, D_in] -> (T tensors [B, D_out], shared [B, D_out] or None).
    """

    def __init__(self, in_dim: int, num_tasks: int, num_shared: int, num_specific: int,
                 hidden: tuple[int, ...], shared_gate: bool) -> None:
        super().__init__()
        total = num_shared + num_tasks * num_specific
        self.experts = ExpertBank(in_dim, total, hidden)
        owner = [0] * num_shared + [1 + t for t in range(num_tasks) for _ in range(num_specific)]
        self.register_buffer("owner", torch.tensor(owner), persistent=False)
        own = [list(range(num_shared)) + [num_shared + t * num_specific + k for k in range(num_specific)]
               for t in range(num_tasks)]
        self.register_buffer("task_experts", torch.tensor(own), persistent=False)  # [T, S + K]
        self.task_gates = nn.ModuleList(nn.Linear(in_dim, num_shared + num_specific) for _ in range(num_tasks))
        self.shared_gate = nn.Linear(in_dim, total) if shared_gate else None

    def forward(self, inputs: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        expert_out = self.experts.forward_all(inputs[self.owner])  # [B, S + T*K, D_out]
        tasks = [mix(expert_out[:, self.task_experts[t]], gate(inputs[1 + t]))
                 for t, gate in enumerate(self.task_gates)]
        shared = mix(expert_out, self.shared_gate(inputs[0])) if self.shared_gate is not None else None
        return tasks, shared


@register("ple")
class PLE(_MultiTaskArch):
    """Progressive Layered Extraction: `num_levels` stacked PLE levels, then task towers."""

    Config = PLEConfig

    def __init__(self, spec: DatasetSpec, config: PLEConfig) -> None:
        super().__init__(spec, config, config.expert_hidden[-1])
        dims = [input_width(spec, spec.feature_names)] + [config.expert_hidden[-1]] * (config.num_levels - 1)
        self.levels = nn.ModuleList(
            PLELevel(d, spec.num_tasks, config.num_shared_experts, config.num_specific_experts,
                     config.expert_hidden, shared_gate=i < config.num_levels - 1)
            for i, d in enumerate(dims)
        )

    def forward(self, embeddings: dict[str, torch.Tensor], dense: torch.Tensor, domain: torch.Tensor) -> ArchOutput:
        x = self.inputs(embeddings, dense)
        inputs = x.unsqueeze(0).expand(self.spec.num_tasks + 1, -1, -1)  # [T + 1, B, D]
        for level in self.levels:
            tasks, shared = level(inputs)
            if shared is not None:
                inputs = torch.stack([shared, *tasks])
        return ArchOutput(self.logits(tasks, embeddings))
