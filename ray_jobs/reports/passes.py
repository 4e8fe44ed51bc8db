"""The pass-by-pass run's report: passes.md, passes.csv and pass_cells.csv in the run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ray_jobs.core.tables import markdown

PASSES_FILE = "passes.json"  # in every pass checkpoint: one record per pass done so far


def pass_table(history: list[dict[str, Any]], sizes: dict[int, int]) -> pd.DataFrame:
    """One row per pass: next-day quality, bounded-table counters, checkpoint size (MB, without
    the pass history; NaN where Ray Train no longer keeps that pass's checkpoint)."""
    table = pd.DataFrame([{k: v for k, v in h.items() if k != "cells"} for h in history])
    table["checkpoint_mb"] = [sizes.get(int(p), np.nan) / 2**20 for p in table["pass"]]
    first = [c for c in ("pass", "day", "next_day_mean_auc", "next_day_mean_gauc") if c in table.columns]
    return table[first + [c for c in table.columns if c not in first]]


def cell_table(history: list[dict[str, Any]]) -> pd.DataFrame:
    """Long format: one row per (pass, domain, task) of the progressive validation."""
    return pd.DataFrame([c for h in history for c in h["cells"]])


def format_passes(history: list[dict[str, Any]], sizes: dict[int, int]) -> str:
    table = pass_table(history, sizes)
    keep = [c for c in table.columns if c in ("pass", "day", "next_day_mean_auc", "next_day_mean_gauc", "train_rows",
                                              "checkpoint_mb") or c.split("/")[0] in
            ("rows_in_use", "evictions", "admission_rejections")]
    return markdown(table[keep])


def write_report(run_dir: Path, history: list[dict[str, Any]], sizes: dict[int, int]) -> None:
    """passes.md (summary per pass, then each pass's domain x task table), passes.csv, pass_cells.csv."""
    run_dir.mkdir(parents=True, exist_ok=True)
    pass_table(history, sizes).to_csv(run_dir / "passes.csv", index=False)
    cells = cell_table(history)
    cells.to_csv(run_dir / "pass_cells.csv", index=False)
    parts = ["# Pass-by-pass training\n", "Next-day metrics score each day with the model trained on the days "
             "before it (progressive validation); counters are cumulative.\n", format_passes(history, sizes)]
    for h in history:
        if h["cells"]:
            frame = pd.DataFrame(h["cells"])[["domain", "task", "n", "positives", "auc", "gauc", "logloss"]]
            parts += [f"\n## Pass {h['pass']} ({h['day']}): next-day metrics\n", markdown(frame)]
    (run_dir / "passes.md").write_text("\n".join(parts))

