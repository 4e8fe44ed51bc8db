"""The full model: TorchRec EmbeddingBagCollection (sparse arch) + a dense architecture."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchrec.modules.embedding_configs import DataType, EmbeddingBagConfig, PoolingType
from torchrec.modules.embedding_modules import EmbeddingBagCollection

import modules.dense  # noqa: F401  (registers the architectures)
from modules.batch import Batch
from modules.dense.base import ArchOutput, TableSet
from modules.dense.registry import arch_class, parse_arch_config
from modules.spec import DatasetSpec

EMBEDDING_INIT = 0.05  # uniform(-a, a) initial embedding weights


def table_name(key: str) -> str:
    """TorchRec table name for the embedding key `key` (names avoid '@')."""
    return "t_" + key.replace("@", "__")


def embedding_tables(spec: DatasetSpec, table_sets: tuple[TableSet, ...],
                     data_type: DataType = DataType.FP32) -> list[EmbeddingBagConfig]:
    """One EmbeddingBagConfig per (table set, feature): the planner sees every table's true size
    (in bytes: `data_type` FP16 halves it, and FBGEMM then stores the weights in fp16)."""
    tables = []
    for table_set in table_sets:
        for feature_name, key in zip(table_set.features, table_set.keys()):
            feature = spec.feature(feature_name)
            tables.append(
                EmbeddingBagConfig(
                    name=table_name(key),
                    num_embeddings=feature.cardinality,
                    embedding_dim=feature.embedding_dim,
                    feature_names=[key],
                    pooling=PoolingType.MEAN if feature.pooling == "mean" else PoolingType.SUM,
                    weight_init_min=-EMBEDDING_INIT,
                    weight_init_max=EMBEDDING_INIT,
                    data_type=data_type,
                )
            )
    return tables


@dataclass
class StepOutput:
    """Detached per-step results for metrics and logging.

    Attributes:
        logits: [B, T]; task_losses: [T] weighted-mean BCE per task; aux_loss: scalar;
        telemetry: architecture statistics (e.g. expert load); labels: [B, T] and weight: [B]
        of the batch (0 for padding rows), for the training loop's windowed NE and calibration
        (the pipelined step hands back only this output, not the batch).
    """

    logits: torch.Tensor
    task_losses: torch.Tensor
    aux_loss: torch.Tensor
    telemetry: dict[str, torch.Tensor] = field(default_factory=dict)
    labels: torch.Tensor | None = None
    weight: torch.Tensor | None = None


def multitask_loss(out: ArchOutput, labels: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over tasks of the weighted-mean BCE, plus the architecture's auxiliary loss.

    Args: out.logits [B, T]; labels [B, T]; weight [B] (0 for padding rows).
    Returns: (total loss scalar, per-task losses [T]).
    """
    bce = F.binary_cross_entropy_with_logits(out.logits, labels, reduction="none")  # [B, T]
    denom = weight.sum().clamp_min(1.0)
    task_losses = (bce * weight.unsqueeze(1)).sum(0) / denom
    total = task_losses.sum()
    if out.aux_loss is not None:
        total = total + out.aux_loss
    return total, task_losses


class SeesawModel(nn.Module):
    """Sparse arch (EBC, sharded by DMP) + dense arch chosen by name.

    Args:
        spec: the data set's features, tasks and domains.
        arch: registered dense architecture name (e.g. "sharedbottom", "pepnet").
        arch_params: that architecture's config as a dict (unknown keys rejected).
        device: where the EBC is built; "meta" defers allocation to DMP.
        fp16_tables: embedding tables in fp16 (a CUDA training option, `train.precision`).
    """

    def __init__(self, spec: DatasetSpec, arch: str, arch_params: dict[str, Any] | None = None,
                 device: torch.device | str | None = None, fp16_tables: bool = False) -> None:
        super().__init__()
        cls = arch_class(arch)
        config = parse_arch_config(arch, arch_params)
        self.spec = spec
        self.arch = arch
        self.table_sets = cls.table_sets(spec, config)
        self.table_data_type = DataType.FP16 if fp16_tables else DataType.FP32
        self.sparse_arch = EmbeddingBagCollection(
            tables=embedding_tables(spec, self.table_sets, self.table_data_type), device=device)
        self.dense_arch = cls(spec, config)

    @property
    def kjt_keys(self) -> tuple[tuple[str, str], ...]:
        """(KJT key, source column) pairs, in the order the collate must emit them."""
        return tuple(
            (key, feature)
            for table_set in self.table_sets
            for feature, key in zip(table_set.features, table_set.keys())
        )

    def predict(self, batch: Batch) -> ArchOutput:
        pooled = self.sparse_arch(batch.sparse).to_dict()
        return self.dense_arch(pooled, batch.dense, batch.domain)

    def forward(self, batch: Batch) -> tuple[torch.Tensor, StepOutput]:
        """Loss and detached outputs of one batch.

        Traceable by torch.fx with the sparse and dense archs as leaves (TorchRec's
        TrainPipelineSparseDist traces it to find the EBC's input, `batch.sparse`): everything
        that inspects the dense arch's output in Python (the optional aux loss, the telemetry
        dict) happens inside `step_output`, which the tracer records as one call.
        """
        return step_output(self.predict(batch), batch.labels, batch.weight)


def step_output(out: ArchOutput, labels: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, StepOutput]:
    """(total loss, detached StepOutput) of a dense arch's output; see `multitask_loss`."""
    loss, task_losses = multitask_loss(out, labels, weight)
    aux = out.aux_loss.detach() if out.aux_loss is not None else torch.zeros((), device=loss.device)
    return loss, StepOutput(out.logits.detach(), task_losses.detach(), aux,
                            {k: v.detach() for k, v in out.telemetry.items()}, labels.detach(), weight.detach())


# a leaf of fx traces: it iterates the telemetry dict and tests aux_loss for None, which a Proxy
# cannot do (torch.fx.wrap must be called at module level, for a module-level function)
torch.fx.wrap("step_output")
