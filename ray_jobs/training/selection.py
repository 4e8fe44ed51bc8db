"""Which epoch's model is the best: the selection metric (`train.select_metric`) and its score.

Apart from the loop (`training.loop`) so that the driver checks a job's metric name before
it starts Ray, without importing torch or TorchRec.
"""

from __future__ import annotations

import math
from typing import Any

from modules.spec import DatasetSpec
from modules.strict import ConfigError
from ray_jobs.core.config import JobConfig


# every report's selection score; Ray Train keeps the best. Reports that are not an epoch end (or
# whose metric is absent) get UNSCORED, a finite number: Ray Train's checkpoint snapshot stores
# NaN as null, and a driver that restores the run then fails to rank its checkpoints.
UNSCORED = -1e30
SELECT_SCORE = "select_score"


def select_metric_name(config: JobConfig, spec: DatasetSpec) -> str:
    """`train.select_metric`, with `auto` resolved: GAUC where the data set has groups."""
    if config.train.select_metric != "auto":
        return config.train.select_metric
    return "val_mean_task_gauc" if spec.group_column else "val_mean_task_auc"


def validation_metric_names(spec: DatasetSpec) -> list[str]:
    """Every `val_*` metric an epoch reports (`evaluation.metrics.summary` of the validation split)."""
    names = ["mean_auc", "mean_gauc", "mean_logloss", "mean_task_auc", "mean_task_gauc"]
    names += [f"{m}/{t}" for t in spec.tasks for m in ("auc", "gauc")]
    return [f"val_{n}" for n in names]


def select_score(metrics: dict[str, Any], name: str) -> float:
    """The epoch's score by `name`, higher is better (a logloss is negated); NaN if undefined."""
    if name not in metrics:
        valid = sorted(k for k in metrics if k.startswith("val_"))
        raise ConfigError(f"train.select_metric {name!r}: no such validation metric; valid: {valid}")
    if metrics[name] is None:  # absent (e.g. GAUC of a data set without groups)
        return math.nan
    value = float(metrics[name])
    return -value if "logloss" in name else value


def better(score: float, best: dict[str, Any] | None) -> bool:
    """NaN never beats a number; the first epoch is the best so far whatever its score."""
    if best is None:
        return True
    if math.isnan(score):
        return False
    return math.isnan(best["score"]) or score > best["score"]
