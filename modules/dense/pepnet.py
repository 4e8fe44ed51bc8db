"""PEPNet (Chang et al., KDD 2023): parameter and embedding personalised gating.

- Gate NU scales a vector by `gamma * sigmoid(...)`, in [0, gamma] (gamma = 2 keeps the
  identity, delta = 1, in the middle of the range).
- EPNet personalises the shared embedding layer per domain: O_ep = delta_domain * E, with
  delta_domain = GateNU(E(domain) ++ stopgrad(E)).
- PPNet personalises every tower layer per user/item/author: each layer's input is scaled by
  delta_l = GateNU_l(O_prior ++ stopgrad(tower input)); one gate per task and per layer.

The stop-gradients keep the gates from changing the representation they modulate: E and O_ep
learn only through the product, the gates learn only from the personal priors.
`PPNetTowers` takes per-task inputs, so it also replaces the towers of other backbones (MMoE).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from modules.dense.base import ArchOutput, DenseArch, concat, input_width, tower
from modules.dense.registry import register
from modules.spec import DatasetSpec

PRIOR_ROLES: tuple[str, ...] = ("user", "item", "author")


def prior_features(spec: DatasetSpec) -> tuple[str, ...]:
    """Names of the features PPNet's prior reads (roles user/item/author), in spec order."""
    names = tuple(f.name for f in spec.features_with_role(*PRIOR_ROLES))
    if not names:
        raise ValueError(f"PPNet needs at least one feature with role in {PRIOR_ROLES}")
    return names


class GateNU(nn.Module):
    """Gate neural unit: x -> gamma * sigmoid(ReLU(x W1 + b1) W2 + b2).

    Args:
        in_dim: input width; out_dim: width of the scaling vector; hidden: width of the ReLU layer;
        gamma: upper bound of the output.
    Shapes: x [B, in_dim] -> [B, out_dim], every entry in [0, gamma].
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int, gamma: float = 2.0) -> None:
        super().__init__()
        self.hidden = nn.Linear(in_dim, hidden)
        self.out = nn.Linear(hidden, out_dim)
        self.gamma = gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * torch.sigmoid(self.out(torch.relu(self.hidden(x))))


class EPNet(nn.Module):
    """Domain-personalised embedding layer.

    Args:
        domain_dim: width of the domain-side embeddings; general_dim: width of E.
    Shapes: domain_emb [B, domain_dim], general [B, general_dim] -> O_ep [B, general_dim].
    """

    def __init__(self, domain_dim: int, general_dim: int, gate_hidden: int, gamma: float = 2.0) -> None:
        super().__init__()
        self.gate = GateNU(domain_dim + general_dim, general_dim, gate_hidden, gamma)

    def forward(self, domain_emb: torch.Tensor, general: torch.Tensor) -> torch.Tensor:
        delta = self.gate(torch.cat([domain_emb, general.detach()], dim=-1))
        return delta * general


class GatedTower(nn.Module):
    """One task's PPNet tower: Linear layers of widths `hidden` then a 1-logit Linear.

    With `gate_after_activation=False` (the paper) every Linear's input is scaled by its own
    gate, the first one included; with True each hidden layer's output is scaled after ReLU
    (which is also the next Linear's input).
    Shapes: x [B, in_dim], prior [B, prior_dim] -> [B, 1].
    """

    def __init__(self, in_dim: int, prior_dim: int, hidden: Sequence[int], gate_hidden: int,
                 gamma: float = 2.0, dropout: float = 0.0, gate_after_activation: bool = False) -> None:
        super().__init__()
        if gate_after_activation and not hidden:
            raise ValueError("gate_after_activation needs at least one hidden tower layer")
        widths = (in_dim, *hidden, 1)
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        gated = widths[1:-1] if gate_after_activation else widths[:-1]
        self.gates = nn.ModuleList(GateNU(prior_dim + in_dim, w, gate_hidden, gamma) for w in gated)
        self.gate_after_activation = gate_after_activation
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        gate_in = torch.cat([prior, x.detach()], dim=-1)
        deltas = [gate(gate_in) for gate in self.gates]  # gate i scales layer i's input (or output)
        h = x
        last = len(self.linears) - 1
        for i, linear in enumerate(self.linears):
            if not self.gate_after_activation:
                h = h * deltas[i]
            h = linear(h)
            if i < last:
                h = self.dropout(torch.relu(h))
                if self.gate_after_activation:
                    h = h * deltas[i]
        return h


class PPNetTowers(nn.Module):
    """One `GatedTower` per task, each with its own per-layer gates.

    Args:
        in_dim: width of each task's tower input; prior_dim: width of O_prior;
        num_tasks: T; hidden: tower hidden widths.
    Shapes: inputs T tensors [B, in_dim] (one per task; pass the same one T times to share),
        prior [B, prior_dim] -> logits [B, T].
    """

    def __init__(self, in_dim: int, prior_dim: int, num_tasks: int, hidden: Sequence[int], gate_hidden: int,
                 gamma: float = 2.0, dropout: float = 0.0, gate_after_activation: bool = False) -> None:
        super().__init__()
        self.towers = nn.ModuleList(
            GatedTower(in_dim, prior_dim, hidden, gate_hidden, gamma, dropout, gate_after_activation)
            for _ in range(num_tasks)
        )

    def forward(self, inputs: Sequence[torch.Tensor], prior: torch.Tensor) -> torch.Tensor:
        if len(inputs) != len(self.towers):
            raise ValueError(f"PPNetTowers: {len(inputs)} inputs for {len(self.towers)} towers")
        return torch.cat([t(x, prior) for t, x in zip(self.towers, inputs)], dim=-1)


@dataclass(frozen=True)
class PEPNetConfig:
    use_epnet: bool = True
    use_ppnet: bool = True
    gamma: float = 2.0
    gate_hidden: int = 64
    tower: tuple[int, ...] = (100, 64)
    gate_after_activation: bool = False
    dropout: float = 0.0


@register("pepnet")
class PEPNet(DenseArch):
    """EPNet over all features (domain features feed its gate), PPNet towers per task.

    E = all sparse embeddings ++ dense features [B, D]; O_prior = user/item/author embeddings.
    With `use_epnet=False` the towers read E; with `use_ppnet=False` they are plain MLP towers.
    """

    Config = PEPNetConfig

    def __init__(self, spec: DatasetSpec, config: PEPNetConfig) -> None:
        super().__init__(spec, config)
        width = input_width(spec, spec.feature_names)
        if config.use_epnet:
            self.domain_features = tuple(f.name for f in spec.features_with_role("domain"))
            if not self.domain_features:
                raise ValueError("EPNet needs at least one sparse feature with role 'domain'")
            domain_dim = input_width(spec, self.domain_features, with_dense=False)
            self.epnet = EPNet(domain_dim, width, config.gate_hidden, config.gamma)
        if config.use_ppnet:
            self.prior_features = prior_features(spec)
            prior_dim = input_width(spec, self.prior_features, with_dense=False)
            self.towers = PPNetTowers(width, prior_dim, spec.num_tasks, config.tower, config.gate_hidden,
                                      config.gamma, config.dropout, config.gate_after_activation)
        else:
            self.towers = nn.ModuleList(tower(width, config.tower, config.dropout) for _ in spec.tasks)

    def forward(self, embeddings: dict[str, torch.Tensor], dense: torch.Tensor, domain: torch.Tensor) -> ArchOutput:
        h = concat(embeddings, self.spec.feature_names, dense)
        if self.config.use_epnet:
            h = self.epnet(concat(embeddings, self.domain_features), h)
        if self.config.use_ppnet:
            logits = self.towers([h] * self.spec.num_tasks, concat(embeddings, self.prior_features))
        else:
            logits = torch.cat([t(h) for t in self.towers], dim=-1)
        return ArchOutput(logits)
