"""Predictions over every worker's shard, gathered, scored per domain x task, saved as Parquet."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.distributed as dist

from modules.batch import Batch
from modules.spec import DatasetSpec
from ray_jobs.core.timeline import Stopwatch
from ray_jobs.evaluation.metrics import cell_metrics
from ray_jobs.training.lockstep import lockstep

PREDICTION_PREFIX = "pred_"


@dataclass
class Predictions:
    """Rows scored by one worker, or by all after `gather`. probs/labels: [N, T]; others [N].

    `sample_id` holds the data set's row ids (-1 without an id column); the row order itself
    depends on how Ray Data split the shards, so joins between runs go through the ids.
    """

    probs: np.ndarray
    labels: np.ndarray
    domain: np.ndarray
    group: np.ndarray
    sample_id: np.ndarray

    @staticmethod
    def concat(parts: list["Predictions"]) -> "Predictions":
        return Predictions(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Predictions)))

    def metrics(self, spec: DatasetSpec) -> pd.DataFrame:
        group = self.group if spec.group_column is not None else None  # no groups: GAUC absent
        return cell_metrics(self.probs, self.labels, self.domain, group, spec.tasks, spec.domains)

    def save(self, path: str | Path, spec: DatasetSpec) -> None:
        """One row per sample: sample_id, domain, group, <task> labels, pred_<task> probabilities."""
        columns = {"sample_id": self.sample_id, "domain": self.domain, "group": self.group}
        columns |= {task: self.labels[:, t].astype(np.int8) for t, task in enumerate(spec.tasks)}
        columns |= {PREDICTION_PREFIX + task: self.probs[:, t] for t, task in enumerate(spec.tasks)}
        pq.write_table(pa.table(columns), path, compression="zstd")

    @staticmethod
    def load(path: str | Path, tasks: Iterable[str]) -> "Predictions":
        table = pq.read_table(path)
        tasks = list(tasks)
        missing = [c for c in ("sample_id", "domain", "group", *tasks, *(PREDICTION_PREFIX + t for t in tasks))
                   if c not in table.column_names]
        if missing:
            raise ValueError(f"{path}: not a predictions file of tasks {tasks}: missing columns {missing}")
        stack = lambda names: np.stack([table[n].to_numpy() for n in names], axis=1)  # noqa: E731
        return Predictions(stack([PREDICTION_PREFIX + t for t in tasks]).astype(np.float32),
                           stack(tasks).astype(np.float32), table["domain"].to_numpy(),
                           table["group"].to_numpy(), table["sample_id"].to_numpy())


@torch.no_grad()
def predict(model: torch.nn.Module, batches: Iterable[Batch], pad: Batch, device: torch.device,
            forward_clock: Stopwatch | None = None) -> Predictions:
    """Scores this worker's batches; runs in lockstep (padding) so no worker's rows are dropped.

    `model` is the DMP-wrapped SeesawModel; padding rows (weight 0) are removed from the result.
    `forward_clock` sums the seconds spent in the model's forwards (not in waiting for batches).
    """
    was_training = model.training
    model.eval()
    parts = []
    clock = forward_clock or Stopwatch()
    for batch in lockstep(batches, pad=lambda: pad):
        batch = batch.to(device)
        with clock:
            _, out = model(batch)
        keep = (batch.weight > 0).cpu().numpy()
        parts.append(Predictions(torch.sigmoid(out.logits).cpu().numpy()[keep], batch.labels.cpu().numpy()[keep],
                                 batch.domain.cpu().numpy()[keep], batch.group.cpu().numpy()[keep],
                                 batch.sample_id.numpy()[keep]))
    model.train(was_training)
    empty = Predictions(np.zeros((0, pad.labels.shape[1]), np.float32), np.zeros((0, pad.labels.shape[1]), np.float32),
                        np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    return Predictions.concat(parts) if parts else empty


def gather(local: Predictions) -> Predictions:
    """Every worker's predictions on every worker (object all-gather; eval sets are modest)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return local
    parts: list[Predictions | None] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, local)
    return Predictions.concat([p for p in parts if p is not None])
