"""Single-task models: T independent models trained side by side in one job.

Each task gets its own table set (set name = task name) and its own MLP + tower, so no
embedding and no dense parameter is shared: the summed loss trains T separate models, the
no-transfer baseline every multi-task model is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from modules.dense.base import ArchOutput, DenseArch, TableSet, concat, input_width, mlp, tower
from modules.dense.registry import register
from modules.spec import DatasetSpec


@dataclass(frozen=True)
class SingleTaskConfig:
    bottom: tuple[int, ...] = (256, 128)
    tower: tuple[int, ...] = (64,)
    dropout: float = 0.0


@register("single_task")
class SingleTask(DenseArch):
    """Task t: its own embeddings of every feature ++ dense -> its own MLP -> its own tower."""

    Config = SingleTaskConfig

    def __init__(self, spec: DatasetSpec, config: SingleTaskConfig) -> None:
        super().__init__(spec, config)
        width = input_width(spec, spec.feature_names)
        out = config.bottom[-1] if config.bottom else width
        self.models = nn.ModuleList(
            nn.Sequential(mlp(width, config.bottom, config.dropout), tower(out, config.tower, config.dropout))
            for _ in spec.tasks
        )
        self.task_keys = tuple(s.keys() for s in self.table_sets(spec, config))  # per task: its keys

    @classmethod
    def table_sets(cls, spec: DatasetSpec, config: object) -> tuple[TableSet, ...]:
        """One table set per task, named after the task."""
        return tuple(TableSet(task, spec.feature_names) for task in spec.tasks)

    def forward(self, embeddings: dict[str, torch.Tensor], dense: torch.Tensor, domain: torch.Tensor) -> ArchOutput:
        logits = [model(concat(embeddings, keys, dense)) for model, keys in zip(self.models, self.task_keys)]
        return ArchOutput(torch.cat(logits, dim=-1))
