"""Raw files the way real data arrives, for the prepare examples and its scale benchmark.

`write_census`: a headerless, ", " separated tabular file in the habits of the UCI Adult
census file ("?" for missing, string labels, no dates, no user ids): the second worked example
of docs/data.md goes from it to a trained model with a recipe only (recipes/census.yaml).
`write_log`: a large interaction log (user, item, day, hour, duration, click, like) written in
chunks to several CSV files, so a log of tens of millions of rows never sits in memory.

Both are seeded and depend on numpy's PCG64 only, so the same arguments give the same bytes.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from modules.strict import ConfigError
from ray_jobs.core.log import logger

CENSUS_COLUMNS = ("age", "workclass", "education", "marital_status", "occupation", "sex", "hours_per_week",
                  "native_country", "income")
WORKCLASS = ("Private", "Self-emp-not-inc", "Self-emp-inc", "Local-gov", "State-gov", "Federal-gov", "Without-pay")
EDUCATION = ("HS-grad", "Some-college", "Bachelors", "Masters", "Assoc-voc", "11th", "Doctorate", "Prof-school")
MARITAL = ("Married-civ-spouse", "Never-married", "Divorced", "Separated", "Widowed", "Married-AF-spouse")
OCCUPATION = ("Prof-specialty", "Craft-repair", "Exec-managerial", "Adm-clerical", "Sales", "Other-service",
              "Machine-op-inspct", "Transport-moving", "Handlers-cleaners", "Tech-support")
COUNTRY = ("United-States", "Mexico", "Philippines", "Germany", "Canada", "India", "England", "Cuba")


def _choice(rng: np.random.Generator, values: tuple[str, ...], n: int, skew: float = 1.0) -> np.ndarray:
    p = 1.0 / np.arange(1, len(values) + 1) ** skew
    return rng.choice(np.array(values, dtype=object), n, p=p / p.sum())


def write_census(path: str | Path, rows: int = 20_000, seed: int = 0, missing: float = 0.03) -> Path:
    """A headerless census-style CSV at `path`; income (">50K" or "<=50K") depends on age,
    education, marital status, occupation and hours through a known logistic model, so a
    trained model must reach an AUC well above 0.5."""
    rng = np.random.default_rng(seed)
    age = rng.integers(17, 91, rows)
    workclass = _choice(rng, WORKCLASS, rows, 1.5)
    education = _choice(rng, EDUCATION, rows)
    marital = _choice(rng, MARITAL, rows, 1.2)
    occupation = _choice(rng, OCCUPATION, rows, 0.5)
    sex = rng.choice(np.array(["Male", "Female"], dtype=object), rows, p=[0.67, 0.33])
    hours = np.clip(rng.normal(40, 12, rows).round(), 1, 99).astype(np.int64)
    country = _choice(rng, COUNTRY, rows, 2.5)
    edu_effect = dict(zip(EDUCATION, (0.0, 0.3, 1.0, 1.5, 0.4, -0.8, 2.0, 2.0)))
    occ_effect = dict(zip(OCCUPATION, (1.0, 0.0, 1.2, -0.2, 0.3, -1.0, -0.5, -0.3, -1.0, 0.6)))
    logit = (-2.6 + 0.04 * (np.minimum(age, 60) - 38) + np.vectorize(edu_effect.get)(education)
             + np.vectorize(occ_effect.get)(occupation) + 1.6 * np.isin(marital, MARITAL[:1] + MARITAL[-1:])
             + 0.03 * (hours - 40) + 0.3 * (sex == "Male"))
    income = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), ">50K", "<=50K").astype(object)
    columns = [age.astype(str).astype(object), workclass, education, marital, occupation, sex,
               hours.astype(str).astype(object), country, income]
    for i in (0, 1, 4, 7):  # age, workclass, occupation, country have "?" like the UCI file
        columns[i] = np.where(rng.random(rows) < missing, "?", columns[i])
    lines = [", ".join(row) for row in zip(*columns)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_log(directory: str | Path, rows: int, files: int = 4, seed: int = 0, chunk: int = 1_000_000,
              users: int = 1_000_000, items: int = 2_000_000, days: int = 14) -> list[Path]:
    """An interaction log of `rows` rows over `files` CSV files in `directory` (header
    user_id,item_id,page,date,hourmin,duration_ms,click,like), written `chunk` rows at a time:
    Zipf-like user and item ids, days in order over `days` days, clicks that depend on the
    item so a vocabulary has signal. Memory stays at one chunk whatever `rows` is."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    item_bias = rng.normal(0, 1, items)
    per_file = -(-rows // files)
    written, paths = 0, []
    for f in range(files):
        path = directory / f"part-{f:05d}.csv"
        paths.append(path)
        end = min(rows, written + per_file)
        with pcsv.CSVWriter(path, _LOG_SCHEMA) as writer:
            while written < end:
                n = min(chunk, end - written)
                day = (np.arange(written, written + n) * days // rows).astype(np.int64)
                user = (rng.pareto(1.2, n) * users / 20).astype(np.int64) % users
                item = (rng.pareto(1.1, n) * items / 50).astype(np.int64) % items
                p_click = 1 / (1 + np.exp(-(item_bias[item] - 1.0)))
                click = (rng.random(n) < p_click).astype(np.int64)
                like = (click & (rng.random(n) < 0.3)).astype(np.int64)
                writer.write_table(pa.table({
                    "user_id": user, "item_id": item, "page": PAGES[rng.choice(len(PAGES), n, p=[0.7, 0.2, 0.1])],
                    "date": 20240101 + day,
                    "hourmin": rng.integers(0, 24, n) * 100 + rng.integers(0, 60, n),
                    "duration_ms": rng.lognormal(10, 1, n).astype(np.int64),
                    "click": click, "like": like,
                }, schema=_LOG_SCHEMA))
                written += n
    return paths


PAGES = np.array(["feed", "search", "mall"], dtype=object)
_LOG_SCHEMA = pa.schema([("user_id", pa.int64()), ("item_id", pa.int64()), ("page", pa.string())]
                        + [(name, pa.int64()) for name in ("date", "hourmin", "duration_ms", "click", "like")])


def write_raw(kind: str, out: str | Path, rows: int | None = None, files: int = 4, seed: int = 0) -> Path:
    """`python -m ray_jobs.generate --raw KIND`: the census CSV (20k rows by default) or the
    chunked interaction log (1M rows by default) at `out`, timed on the console."""
    start = time.perf_counter()
    if kind == "census":
        path = write_census(out, rows=rows or 20_000, seed=seed)
    elif kind == "log":
        path = write_log(out, rows=rows or 1_000_000, files=files, seed=seed)
    else:
        raise ConfigError(f"--raw {kind!r}: expected census or log")
    logger.info("%s: raw %s in %.1fs", out, kind, time.perf_counter() - start)
    return path
