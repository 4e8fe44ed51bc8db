"""Ray Data ingest: the streams of each split a TorchTrainer hands to its workers."""

from __future__ import annotations

import ray.data
import ray.train
from ray.data import ExecutionOptions

from ray_jobs.data.dataset import SPLITS, Dataset


def ray_datasets(dataset: Dataset, splits: tuple[str, ...] = SPLITS) -> dict[str, ray.data.Dataset]:
    """Ray Data streams of the needed columns only.

    Ray Data's own progress bars are off: the train loop prints rank-0 progress lines, and
    per-operator bars from every worker would drown them.
    """
    ray.data.DataContext.get_current().enable_progress_bars = False
    columns = list(dataset.spec.required_columns())
    return {s: ray.data.read_parquet(list(dataset.splits[s].files), columns=columns) for s in splits}


def ordered_ingest() -> ray.train.DataConfig:
    """Ray Train ingest that keeps Ray Data's block order, so every run over the same files feeds
    each worker the same batches: a resumed run then skips exactly the batches it trained on
    (in the default order the split hands blocks to whichever worker asks first)."""
    return ray.train.DataConfig(execution_options=ExecutionOptions(preserve_order=True))
