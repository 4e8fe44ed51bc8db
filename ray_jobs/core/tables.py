"""The one table formatter: Markdown for reports, fixed-width text for the console.

Every table Seesaw prints or writes goes through `markdown` or `text`; cells are formatted by
`cell` (floats to 4 decimals, missing values as `-`).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd

MISSING = "-"


def cell(value: Any) -> str:
    """One cell's text: floats to 4 decimals (tiny ones in 4 significant digits), NaN/None as `-`."""
    if value is None:
        return MISSING
    if isinstance(value, float):
        if math.isnan(value):
            return MISSING
        return f"{value:.4g}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"
    if isinstance(value, (list, tuple)):
        return str(tuple(value))
    return str(value)


def _rows(table: pd.DataFrame | Sequence[Sequence[Any]], header: Sequence[str] | None) -> tuple[list[str], list[list[str]]]:
    if isinstance(table, pd.DataFrame):
        return [str(c) for c in table.columns], [[cell(v) for v in row] for row in table.itertuples(index=False)]
    if header is None:
        raise ValueError("a table given as rows needs a header")
    return list(header), [[v if isinstance(v, str) else cell(v) for v in row] for row in table]


def markdown(table: pd.DataFrame | Sequence[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    """A GitHub-flavoured Markdown table of a DataFrame, or of rows under `header`."""
    names, body = _rows(table, header)
    lines = ["| " + " | ".join(names) + " |", "|" + "|".join("---" for _ in names) + "|"]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in body)]) + "\n"


def text(table: pd.DataFrame | Sequence[Sequence[Any]], header: Sequence[str] | None = None,
         left: int = 0, rule: bool = True) -> str:
    """A fixed-width console table: the first `left` columns left-aligned, the rest right-aligned."""
    names, body = _rows(table, header)
    widths = [max(len(row[i]) for row in [names, *body]) for i in range(len(names))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    lines = [line(names), *(["  ".join("-" * w for w in widths)] if rule else []), *(line(r) for r in body)]
    return "\n".join(lines) + "\n"


def cells_table(df: pd.DataFrame, metrics: Sequence[str] = ("auc", "gauc", "logloss")) -> str:
    """The domain x task metrics table of a run, one line per row of `df` in its order.

    Args: df with columns domain, task, n, positives and each of `metrics`.
    """
    rows = [[str(r["domain"]), str(r["task"]), str(int(r["n"])), str(int(r["positives"])),
             *(MISSING if pd.isna(r[m]) else f"{r[m]:.4f}" for m in metrics)] for _, r in df.iterrows()]
    return text(rows, ["domain", "task", "n", "positives", *metrics], left=2)
