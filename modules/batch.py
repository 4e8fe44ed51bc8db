"""The training batch that flows from the input pipeline into the model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor
from torchrec.streamable import Pipelineable


@dataclass
class Batch(Pipelineable):
    """One batch of B samples.

    Attributes:
        sparse: KeyedJaggedTensor, one key per embedding table (see `SeesawModel.kjt_keys`).
        dense: [B, F] float32 dense features.
        labels: [B, T] float32 labels in {0, 1}.
        domain: [B] int64 domain ids.
        group: [B] int64 group ids for GAUC (the user id).
        weight: [B] float32 sample weights; 0 marks padding rows that must not count.
        sample_id: [B] int64 row ids from the spec's `id_column` (-1 when it has none); only
            the predictions carry them, the model never reads them.
    """

    sparse: KeyedJaggedTensor
    dense: torch.Tensor
    labels: torch.Tensor
    domain: torch.Tensor
    group: torch.Tensor
    weight: torch.Tensor
    sample_id: torch.Tensor

    @property
    def size(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device, non_blocking: bool = False) -> "Batch":
        return Batch(
            sparse=self.sparse.to(device=device, non_blocking=non_blocking),
            dense=self.dense.to(device=device, non_blocking=non_blocking),
            labels=self.labels.to(device=device, non_blocking=non_blocking),
            domain=self.domain.to(device=device, non_blocking=non_blocking),
            group=self.group.to(device=device, non_blocking=non_blocking),
            weight=self.weight.to(device=device, non_blocking=non_blocking),
            sample_id=self.sample_id,  # stays on the host: read back only with the predictions
        )

    def record_stream(self, stream: torch.Stream) -> None:
        self.sparse.record_stream(stream)
        for t in (self.dense, self.labels, self.domain, self.group, self.weight):
            t.record_stream(stream)

    def pin_memory(self) -> "Batch":
        return Batch(
            sparse=self.sparse.pin_memory(),
            dense=self.dense.pin_memory(),
            labels=self.labels.pin_memory(),
            domain=self.domain.pin_memory(),
            group=self.group.pin_memory(),
            weight=self.weight.pin_memory(),
            sample_id=self.sample_id,
        )
