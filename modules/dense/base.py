"""The contract every dense architecture follows, and the pieces they share.

A dense architecture never knows how the embeddings were sharded: it receives a dict of pooled
embeddings (`[B, d]` per key), the dense features `[B, F]` and the domain ids `[B]`, and returns
logits `[B, T]` plus an optional auxiliary loss (e.g. an MoE load-balance term).

Architectures that need more than one embedding of a feature (STEM-Net's task-specific tables,
single-task models, ME-MMoE) declare extra *table sets*: each set gets its own TorchRec tables
and its embeddings arrive under `embedding_key(feature, set_name)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Sequence

import torch
from torch import nn

from modules.spec import DatasetSpec

SHARED_SET = ""


def embedding_key(feature: str, table_set: str = SHARED_SET) -> str:
    """The KJT key / pooled-embedding key of `feature` in `table_set` ("" = shared)."""
    return feature if table_set == SHARED_SET else f"{feature}@{table_set}"


@dataclass(frozen=True)
class TableSet:
    """A named set of embedding tables, one per listed feature."""

    name: str
    features: tuple[str, ...]

    def keys(self) -> tuple[str, ...]:
        return tuple(embedding_key(f, self.name) for f in self.features)


@dataclass
class ArchOutput:
    """What a dense architecture returns.

    Attributes:
        logits: [B, T] pre-sigmoid scores, one column per task in spec order.
        aux_loss: scalar added to the summed task losses (0-dim tensor), or None.
        telemetry: detached statistics to report (e.g. per-expert load [E]).
    """

    logits: torch.Tensor
    aux_loss: torch.Tensor | None = None
    telemetry: dict[str, torch.Tensor] = field(default_factory=dict)


class DenseArch(nn.Module):
    """Base class: subclasses set `Config` (a frozen dataclass) and implement `forward`."""

    Config: ClassVar[type]

    def __init__(self, spec: DatasetSpec, config: object) -> None:
        super().__init__()
        self.spec = spec
        self.config = config

    @classmethod
    def table_sets(cls, spec: DatasetSpec, config: object) -> tuple[TableSet, ...]:
        """Embedding table sets this architecture reads; default: one shared set."""
        return (TableSet(SHARED_SET, spec.feature_names),)

    def forward(
        self, embeddings: dict[str, torch.Tensor], dense: torch.Tensor, domain: torch.Tensor
    ) -> ArchOutput:
        """Args: embeddings: key -> [B, d]; dense: [B, F]; domain: [B] int64. Returns ArchOutput."""
        raise NotImplementedError


def mlp(in_dim: int, hidden: Sequence[int], dropout: float = 0.0, last_activation: bool = True) -> nn.Sequential:
    """Linear-ReLU stack; `hidden=()` is the identity. Output width: hidden[-1] (or in_dim)."""
    layers: list[nn.Module] = []
    dim = in_dim
    for i, width in enumerate(hidden):
        layers.append(nn.Linear(dim, width))
        if last_activation or i < len(hidden) - 1:
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        dim = width
    return nn.Sequential(*layers)


def tower(in_dim: int, hidden: Sequence[int], dropout: float = 0.0) -> nn.Sequential:
    """A task tower: MLP then a linear map to one logit. Returns [B, 1]."""
    return nn.Sequential(mlp(in_dim, hidden, dropout), nn.Linear(hidden[-1] if hidden else in_dim, 1))


def concat(embeddings: dict[str, torch.Tensor], keys: Sequence[str], dense: torch.Tensor | None = None) -> torch.Tensor:
    """Concatenates the embeddings of `keys` (and the dense features) into [B, sum(d) (+F)]."""
    parts = [embeddings[k] for k in keys]
    if dense is not None and dense.shape[-1] > 0:
        parts.append(dense)
    return torch.cat(parts, dim=-1)


def input_width(spec: DatasetSpec, features: Sequence[str], with_dense: bool = True) -> int:
    """Width of `concat` over `features` of `spec` (plus the dense features)."""
    width = sum(spec.feature(f).embedding_dim for f in features)
    return width + (len(spec.dense_features) if with_dense else 0)
