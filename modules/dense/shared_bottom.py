"""SharedBottom (Caruana 1997): one shared MLP over all features, one tower per task."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from modules.dense.base import ArchOutput, DenseArch, concat, input_width, mlp, tower
from modules.dense.registry import register
from modules.spec import DatasetSpec


@dataclass(frozen=True)
class SharedBottomConfig:
    bottom: tuple[int, ...] = (256, 128)
    tower: tuple[int, ...] = (64,)
    dropout: float = 0.0


@register("sharedbottom")
class SharedBottom(DenseArch):
    """All tasks share the bottom MLP; the domain id is an ordinary input feature."""

    Config = SharedBottomConfig

    def __init__(self, spec: DatasetSpec, config: SharedBottomConfig) -> None:
        super().__init__(spec, config)
        width = input_width(spec, spec.feature_names)
        self.bottom = mlp(width, config.bottom, config.dropout)
        out = config.bottom[-1] if config.bottom else width
        self.towers = nn.ModuleList(tower(out, config.tower, config.dropout) for _ in spec.tasks)

    def forward(self, embeddings: dict[str, torch.Tensor], dense: torch.Tensor, domain: torch.Tensor) -> ArchOutput:
        h = self.bottom(concat(embeddings, self.spec.feature_names, dense))
        return ArchOutput(torch.cat([t(h) for t in self.towers], dim=-1))
