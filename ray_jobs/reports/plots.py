"""PNG views of `metrics.cell_metrics` tables: heatmaps, gain heatmaps, expert load, conflict buckets.

The heatmaps put domains on rows and tasks on columns, so both seesaws are visible at a glance:
a model that trades a small domain for the big one shows up as a row, a task trade-off as a column.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import matplotlib

matplotlib.use("Agg")  # file output only; no display on Ray workers or CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ray_jobs.core.tables import MISSING  # noqa: E402

HIGHER_IS_BETTER = {"auc": True, "gauc": True, "logloss": False}


def _fmt(value: float) -> str:
    return MISSING if pd.isna(value) else f"{value:.4f}"


def cell_matrix(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """`metric` as a domain (rows) x task (columns) frame, both in order of first appearance."""
    matrix = df.pivot(index="domain", columns="task", values=metric)
    return matrix.loc[pd.unique(df["domain"]), pd.unique(df["task"])].astype(float)


def gain_matrix(df_model: pd.DataFrame, df_base: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per-cell improvement of a model over a baseline; positive = better (for logloss that
    is base - model). Cells missing from either frame are NaN."""
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"no known direction for {metric!r}; gains are defined for {sorted(HIGHER_IS_BETTER)}")
    model, base = cell_matrix(df_model, metric), cell_matrix(df_base, metric)
    base = base.reindex(index=model.index, columns=model.columns)
    return model - base if HIGHER_IS_BETTER[metric] else base - model


@contextmanager
def _figure(path: str | Path, rows: int, cols: int, figsize: tuple[float, float]) -> Iterator[tuple[Any, np.ndarray]]:
    """(figure, [rows, cols] axes) saved to `path` as PNG when the block ends, closed either way."""
    fig, axes = plt.subplots(rows, cols, figsize=figsize, squeeze=False)
    try:
        yield fig, axes
        fig.tight_layout()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)


def _draw(matrix: pd.DataFrame, path: str | Path, title: str, cmap: str,
          limits: tuple[float, float] | None, label: str) -> Path:
    values = matrix.to_numpy(dtype=float)
    rows, cols = values.shape
    with _figure(path, 1, 1, (1.4 * cols + 2.5, 0.6 * rows + 1.8)) as (fig, axes):
        ax = axes[0, 0]
        if limits is not None:
            vmin, vmax = limits
        elif np.isfinite(values).any():
            vmin, vmax = float(np.nanmin(values)), float(np.nanmax(values))
        else:
            vmin, vmax = 0.0, 1.0
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
        ax.set_xticks(range(cols), [str(c) for c in matrix.columns])
        ax.set_yticks(range(rows), [str(r) for r in matrix.index])
        ax.set_xlabel("task")
        ax.set_ylabel("domain")
        ax.set_title(title)
        middle = (vmin + vmax) / 2
        for i in range(rows):
            for j in range(cols):
                v = values[i, j]
                ax.text(j, i, _fmt(v), ha="center", va="center", fontsize=9,
                        color="black" if np.isnan(v) or abs(v - middle) < 0.3 * (vmax - vmin) else "white")
        fig.colorbar(image, ax=ax, label=label)
    return Path(path)


def heatmap(df: pd.DataFrame, metric: str, path: str | Path, title: str | None = None) -> Path:
    """PNG of `metric` per domain (rows) x task (columns), values annotated in each cell."""
    cmap = "viridis" if HIGHER_IS_BETTER.get(metric, True) else "viridis_r"
    return _draw(cell_matrix(df, metric), path, title or metric, cmap, None, metric)


def gain_heatmap(df_model: pd.DataFrame, df_base: pd.DataFrame, metric: str, path: str | Path,
                 title: str | None = None) -> Path:
    """PNG of a model's per-cell gain over a baseline, diverging colours centred at 0
    (green = the model is better, red = worse)."""
    gain = gain_matrix(df_model, df_base, metric)
    size = np.abs(gain.to_numpy(dtype=float))
    bound = float(np.nanmax(size)) if np.isfinite(size).any() else 0.0
    bound = bound if bound > 0 else 1e-3  # all-equal cells still get a valid colour scale
    return _draw(gain, path, title or f"{metric} gain over baseline", "RdYlGn", (-bound, bound),
                 f"{metric} gain (positive = better)")


def expert_load_plot(loads: dict[str, np.ndarray], path: str | Path) -> Path:
    """PNG of each model's per-expert load x E (1 = uniform), experts sorted by load, one panel
    per model: a flat profile is balanced routing, a cliff is collapsed routing."""
    with _figure(path, len(loads), 1, (7, 1.8 * len(loads) + 0.6)) as (_, axes):
        for ax, (label, load) in zip(axes[:, 0], loads.items()):
            relative = np.sort(np.asarray(load, dtype=float))[::-1] * len(load)
            ax.bar(np.arange(len(relative)), relative, color="tab:blue", width=0.85)
            ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
            ax.set_ylabel("load x E")
            ax.set_title(f"{label} ({len(load)} experts, sorted)", fontsize=9)
        axes[-1, 0].set_xlabel("expert rank by load")
    return Path(path)


def bucket_plot(table: pd.DataFrame, path: str | Path, title: str) -> Path:
    """PNG of AUC per bucket (x) for every model (lines), one panel per task: the conflict
    analysis of `ray_jobs.evaluation.conflict` (columns model, task, bucket, auc; bucket 0 rows skipped)."""
    per_bucket = table[table["bucket"] > 0]
    tasks = list(pd.unique(per_bucket["task"]))
    with _figure(path, 1, len(tasks), (5.5 * len(tasks), 3.6)) as (_, axes):
        for ax, task in zip(axes[0], tasks):
            for label, rows in per_bucket[per_bucket["task"] == task].groupby("model", sort=False):
                ax.plot(rows["bucket"], rows["auc"], marker="o", markersize=3, label=label)
            ax.set_xlabel("bucket (1 = B-overwhelming ... last = A-overwhelming)")
            ax.set_ylabel(f"{task} AUC")
            ax.set_title(f"{title}: {task}", fontsize=10)
        axes[0, -1].legend(fontsize=8)
    return Path(path)
