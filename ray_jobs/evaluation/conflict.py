"""STEM-Net's negative-transfer analysis: AUC on samples where one task's preference dominates.

Two single-task models (Seesaw's `single_task` arch trains one per task, no sharing) give
each test sample p_A and p_B. Samples are ranked by log(p_A / p_B) and cut into equal-frequency
buckets (10, as the paper does): bucket 1 holds the samples the B model likes most relative to
the A model (task-B-overwhelming), the last bucket the task-A-overwhelming ones, the middle the
comparable ones. A constant shift of the log-ratio (the tasks' different base rates) moves no
sample between buckets, so only the relative preference counts.

A model that shares one embedding across tasks is expected to lose task B's AUC where A
overwhelms (and vice versa); STEM-Net's task-specific embeddings should hold up there.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from modules.strict import ConfigError
from ray_jobs.evaluation.predictions import Predictions
from ray_jobs.evaluation.metrics import auc

NUM_BUCKETS = 10
EPS = 1e-7


def subset_of(bucket: int, num_buckets: int = NUM_BUCKETS) -> str:
    """The paper's three subsets over buckets 1..num_buckets: lowest 30% B-, highest 30% A-overwhelming."""
    third = round(0.3 * num_buckets)
    if bucket <= third:
        return "B-overwhelming"
    if bucket > num_buckets - third:
        return "A-overwhelming"
    return "comparable"


def by_sample_id(predictions: Predictions, where: str) -> Predictions:
    """Rows sorted by sample id; the ids must be present and unique to join runs."""
    ids = predictions.sample_id
    if len(ids) == 0 or (ids < 0).any():
        raise ConfigError(f"{where}: predictions carry no sample ids; the data set needs an id_column "
                          "(regenerate synthetic data, or re-run prepare)")
    order = np.argsort(ids, kind="stable")
    if (np.diff(ids[order]) == 0).any():
        raise ConfigError(f"{where}: duplicate sample ids in the predictions")
    return Predictions(*(getattr(predictions, f.name)[order] for f in fields(Predictions)))


def mean_over_seeds(seeds: Sequence[Predictions], where: str) -> Predictions:
    """The seeds' predictions joined by sample id, probabilities averaged."""
    aligned = [by_sample_id(p, where) for p in seeds]
    for other in aligned[1:]:
        if not np.array_equal(other.sample_id, aligned[0].sample_id):
            raise ConfigError(f"{where}: the seeds' predictions cover different test rows")
    first = aligned[0]
    return Predictions(np.mean([p.probs for p in aligned], axis=0), first.labels, first.domain, first.group,
                       first.sample_id)


def buckets(reference: Predictions, task_a: int, task_b: int, num_buckets: int = NUM_BUCKETS) -> np.ndarray:
    """[N] bucket 1..num_buckets of each row of `reference` (sorted by sample id) by log(p_A / p_B)."""
    p = np.clip(reference.probs.astype(np.float64), EPS, 1 - EPS)
    ratio = np.log(p[:, task_a]) - np.log(p[:, task_b])
    rank = np.argsort(np.argsort(ratio, kind="stable"), kind="stable")
    return rank * num_buckets // len(ratio) + 1


def bucket_aucs(predictions: Mapping[str, Sequence[Predictions]], reference: str, tasks: Sequence[str],
                task_a: str, task_b: str, num_buckets: int = NUM_BUCKETS) -> pd.DataFrame:
    """AUC of tasks A and B per bucket and per subset for every model (mean over its seeds).

    Returns columns model, task, bucket (1..num_buckets, or 0 for a subset row), subset, n,
    positives, auc.
    """
    if reference not in predictions:
        raise ConfigError(f"--conflict-reference {reference!r} is not among the models {list(predictions)}")
    for task in (task_a, task_b):
        if task not in tasks:
            raise ConfigError(f"--conflict-tasks: unknown task {task!r}; tasks are {list(tasks)}")
    a, b = tasks.index(task_a), tasks.index(task_b)
    ref = mean_over_seeds(predictions[reference], reference)
    bucket = buckets(ref, a, b, num_buckets)
    subset = np.array([subset_of(int(k), num_buckets) for k in bucket])
    rows = []
    for label, seeds in predictions.items():
        aligned = [by_sample_id(p, label) for p in seeds]
        if any(not np.array_equal(p.sample_id, ref.sample_id) for p in aligned):
            raise ConfigError(f"{label}: its predictions cover other test rows than {reference}'s")
        for task, t in ((task_a, a), (task_b, b)):
            labels = ref.labels[:, t]
            parts = [(k, subset_of(k, num_buckets), bucket == k) for k in range(1, num_buckets + 1)]
            parts += [(0, name, subset == name) for name in ("B-overwhelming", "comparable", "A-overwhelming")]
            for k, name, rows_in in parts:
                y = labels[rows_in]
                score = np.mean([auc(y, p.probs[rows_in, t]) for p in aligned])
                rows.append({"model": label, "task": task, "bucket": k, "subset": name, "n": int(rows_in.sum()),
                             "positives": int(y.sum()), "auc": score})
    return pd.DataFrame(rows)
