"""Human-readable views of `metrics.cell_metrics` tables: a terminal table and PNG heatmaps.

The heatmaps put domains on rows and tasks on columns, so both seesaws are visible at a glance:
a model that trades a small domain for the big one shows up as a row, a task trade-off as a column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # file output only; no display on Ray workers or CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HIGHER_IS_BETTER = {"auc": True, "gauc": True, "logloss": False}
VALUE_FORMAT = "{:.4f}"
MISSING = "-"


def _fmt(value: float) -> str:
    return MISSING if pd.isna(value) else VALUE_FORMAT.format(value)


def format_table(df: pd.DataFrame, metrics: Sequence[str] = ("auc", "gauc", "logloss")) -> str:
    """Fixed-width text table, one line per (domain, task) row of `df` in its order.

    Args: df with columns domain, task, n, positives and each of `metrics`.
    """
    header = ["domain", "task", "n", "positives", *metrics]
    body = [[str(r["domain"]), str(r["task"]), str(int(r["n"])), str(int(r["positives"])),
             *(_fmt(r[m]) for m in metrics)] for _, r in df.iterrows()]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    text_cols = 2  # domain and task are left-aligned, numbers right-aligned

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < text_cols else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(row) for row in body)]) + "\n"


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


def _draw(matrix: pd.DataFrame, path: str | Path, title: str, cmap: str,
          limits: tuple[float, float] | None, label: str) -> Path:
    values = matrix.to_numpy(dtype=float)
    rows, cols = values.shape
    fig, ax = plt.subplots(figsize=(1.4 * cols + 2.5, 0.6 * rows + 1.8))
    try:
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
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path


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
