"""Predictions over every worker's shard, gathered, scored per domain x task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

from modules.batch import Batch
from modules.spec import DatasetSpec
from ray_jobs.lockstep import lockstep
from ray_jobs.metrics import cell_metrics


@dataclass
class Predictions:
    """Rows scored by one worker, or by all after `gather`. probs/labels: [N, T]; others [N]."""

    probs: np.ndarray
    labels: np.ndarray
    domain: np.ndarray
    group: np.ndarray

    @staticmethod
    def concat(parts: list["Predictions"]) -> "Predictions":
        return Predictions(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("probs", "labels", "domain", "group")))

    def metrics(self, spec: DatasetSpec) -> pd.DataFrame:
        return cell_metrics(self.probs, self.labels, self.domain, self.group, spec.tasks, spec.domains)


@torch.no_grad()
def predict(model: torch.nn.Module, batches: Iterable[Batch], pad: Batch, device: torch.device) -> Predictions:
    """Scores this worker's batches; runs in lockstep (padding) so no worker's rows are dropped.

    `model` is the DMP-wrapped SeesawModel; padding rows (weight 0) are removed from the result.
    """
    was_training = model.training
    model.eval()
    parts = []
    for batch in lockstep(batches, pad=lambda: pad):
        batch = batch.to(device)
        _, out = model(batch)
        keep = (batch.weight > 0).cpu().numpy()
        parts.append(Predictions(torch.sigmoid(out.logits).cpu().numpy()[keep], batch.labels.cpu().numpy()[keep],
                                 batch.domain.cpu().numpy()[keep], batch.group.cpu().numpy()[keep]))
    model.train(was_training)
    empty = Predictions(np.zeros((0, pad.labels.shape[1]), np.float32), np.zeros((0, pad.labels.shape[1]), np.float32),
                        np.zeros(0, np.int64), np.zeros(0, np.int64))
    return Predictions.concat(parts) if parts else empty


def gather(local: Predictions) -> Predictions:
    """Every worker's predictions on every worker (object all-gather; eval sets are modest)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return local
    parts: list[Predictions | None] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, local)
    return Predictions.concat([p for p in parts if p is not None])
