"""How much of a comparison is test-set noise: a bootstrap over test users for every model.

The seed spread in the comparison report measures training noise; this measures the other
half, the noise of a finite test set. Test users are resampled R times (`user_resamples`), the
same R draws for every model and every seed, so

- a model's interval is the percentile interval of its seed-averaged metric over the draws;
- its gain over the baseline is paired: both are scored on the same resampled test set, which
  cancels the difficulty shared by both (the interval of a difference of two intervals would
  be far wider than the truth).

Users, not rows, are resampled because one user's impressions share preferences.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from modules.spec import DatasetSpec
from ray_jobs.core.run_dir import PREDICTIONS_FILE
from ray_jobs.evaluation.predictions import Predictions
from ray_jobs.evaluation.metrics import ALL_DOMAINS, resampled_cells, user_resamples

METRICS = ("auc", "gauc")


@dataclass(frozen=True)
class Replicates:
    """One model's bootstrap draws, averaged over its seeds.

    cells: metric -> [C, R] per cell (`cell_metrics` row order); mean: metric -> [R] the
    mean over the domain x task cells (NaN cells skipped, as `metrics.summary` does).
    """

    cells: dict[str, np.ndarray]
    mean: dict[str, np.ndarray]


def load_predictions(run_dirs: Mapping[str, Sequence[Path]], tasks: Sequence[str]) -> dict[str, list[Predictions]] | None:
    """label -> each seed's test predictions; None when a run has no predictions file (runs
    trained before predictions were saved), so the report can say why it has no intervals."""
    out: dict[str, list[Predictions]] = {}
    for label, dirs in run_dirs.items():
        paths = [Path(d) / PREDICTIONS_FILE for d in dirs]
        if not all(p.exists() for p in paths):
            return None
        out[label] = [Predictions.load(p, tasks) for p in paths]
    return out


def replicates(seeds: Sequence[Predictions], spec: DatasetSpec, keys: np.ndarray, counts: np.ndarray) -> Replicates:
    """Bootstrap draws of one model (see the module docstring)."""
    num_cells = spec.num_domains * spec.num_tasks
    cells, mean = {}, {}
    for metric in METRICS:
        per_seed = [resampled_cells(p.probs, p.labels, p.domain, p.group, spec.num_domains, metric, keys, counts)
                    for p in seeds]
        cells[metric] = np.mean(per_seed, axis=0)
        with warnings.catch_warnings():  # a draw with every cell NaN stays NaN, without a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            mean[metric] = np.nanmean(cells[metric][:num_cells], axis=0)
    return Replicates(cells, mean)


def _interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    draws = draws[np.isfinite(draws)]
    if len(draws) == 0:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def confidence_intervals(predictions: Mapping[str, Sequence[Predictions]], spec: DatasetSpec, baseline: str | None,
                         num_resamples: int = 200, confidence: float = 0.95,
                         seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, cells) interval tables.

    summary: model, metric, low, high (of the mean over cells) and gain_low, gain_high (paired,
        vs `baseline`; NaN for the baseline itself or without one).
    cells: model, domain, task, metric, low, high.
    """
    groups = np.concatenate([p.group for seeds in predictions.values() for p in seeds])
    keys, counts = user_resamples(groups, num_resamples, seed)
    draws = {label: replicates(seeds, spec, keys, counts) for label, seeds in predictions.items()}
    names = [(d, t) for d in spec.domains for t in spec.tasks] + [(ALL_DOMAINS, t) for t in spec.tasks]
    summary_rows, cell_rows = [], []
    for label, rep in draws.items():
        for metric in METRICS:
            gain = (_interval(rep.mean[metric] - draws[baseline].mean[metric], confidence)
                    if baseline in draws and label != baseline else (float("nan"), float("nan")))
            low, high = _interval(rep.mean[metric], confidence)
            summary_rows.append({"model": label, "metric": metric, "low": low, "high": high,
                                 "gain_low": gain[0], "gain_high": gain[1]})
            for (domain, task), values in zip(names, rep.cells[metric]):
                low, high = _interval(values, confidence)
                cell_rows.append({"model": label, "domain": domain, "task": task, "metric": metric,
                                  "low": low, "high": high})
    return pd.DataFrame(summary_rows), pd.DataFrame(cell_rows)
