"""Raw interaction logs -> a Seesaw data set (the library half of `python -m ray_jobs.prepare`).

Reads the log and its side tables, splits by day, fits every encoder (vocabularies, bucket
boundaries, dense statistics, domain list) on the training split only, and writes

    <out>/spec.json                       DatasetSpec: cardinality = vocabulary size + 1 (OOV 0)
    <out>/{train,valid,test}/part-00000.parquet
    <out>/vocab/<feature>.parquet, <out>/vocab/encoders.json   (reuse: Encoders.load + encode)
    <out>/prepare.json                    recipe, rows and rates per split; written last

Output is a pure function of the inputs and the recipe (same bytes on every run). Raw input
that cannot be used fails with a RawDataError naming the file, the column and the value.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from modules.spec import DatasetSpec, SparseFeature
from modules.strict import to_dict
from ray_jobs.core.errors import RawDataError
from ray_jobs.core.log import logger
from ray_jobs.core.storage import local_path
from ray_jobs.data.dataset import SPLITS
from ray_jobs.data.readers import Origin, _unify, read_source
from ray_jobs.data.recipe import (DOMAIN_COLUMN, GROUP_COLUMN, ID_COLUMN, Buckets, DaySplit, DenseSpec, Domain,
                                  RandomSplit, Recipe,
                                  Split, SparseSpec, Task)
from ray_jobs.data.splits import assign, fnv1a64, uniform

OTHER = "other"
OOV = 0
OOV_WARN_RATE = 0.95  # a feature this much out of vocabulary in valid/test carries almost nothing there
MIN_POSITIVES = 20  # fewer positives in valid/test: that task's AUC is noise
MARKER = "prepare.json"
PART = "part-00000.parquet"
ROW_GROUP_ROWS = 1024 * 1024  # pyarrow's default row group length, named so both paths cut row groups alike


@dataclass(frozen=True)
class RawLog:
    """The joined raw rows (index = row number in the stacked log) and where each column came
    from: `sources` column -> Origin (files and their first rows); `rows` joined column ->
    the frame column holding the row number in its side table; `split` the split ids of
    pre-split inputs (split.files), else None."""

    frame: pd.DataFrame
    sources: dict[str, Origin]
    rows: dict[str, str] = field(default_factory=dict)
    split: np.ndarray | None = None

    def where(self, column: str) -> str:
        return str(self.sources.get(column, "input"))

    def take(self, mask: np.ndarray) -> "RawLog":
        return RawLog(self.frame[mask], self.sources, self.rows)

    def locate(self, column: str, i: int) -> tuple[str, int]:
        """(file, row within that file) of the i-th row of the frame, for `column`."""
        row = int(self.frame[self.rows[column]].iloc[i]) if column in self.rows else int(self.frame.index[i])
        origin = self.sources.get(column)
        if origin is None:
            return "input", row
        path, row = origin.locate(row)
        return str(path), row

    def first_bad(self, column: str, bad: np.ndarray, problem: str) -> RawDataError:
        """An error for the first row flagged in `bad`, quoting its raw value."""
        i = int(np.flatnonzero(bad)[0])
        value = self.frame[column].iloc[i]
        value = value.item() if isinstance(value, np.generic) else value
        value = None if value is pd.NA or (isinstance(value, float) and np.isnan(value)) else value
        path, row = self.locate(column, i)
        return RawDataError(f"{path}: column {column!r}, row {row}: value {value!r} {problem}")


def _frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(date_as_object=False)


def _needed(recipe: Recipe) -> list[str]:
    needed = [recipe.domain.column] + [t.column for t in recipe.tasks]
    needed += [f.column for f in recipe.sparse + recipe.dense]
    if recipe.split.kind == "day":
        needed.append(recipe.split.column)
    if recipe.split.kind == "random" and recipe.split.random.key is not None:
        needed.append(recipe.split.random.key)
    return list(dict.fromkeys(needed))


def _read_log(recipe: Recipe, raw_dir: Path | None) -> tuple[pa.Table, Origin, np.ndarray | None]:
    """The log's rows, their Origin and, for pre-split inputs, each row's split id."""
    if recipe.split.kind != "files":
        table, origin = read_source(recipe.log.source(), raw_dir, recipe.root)
        return table, origin, None
    parts = [read_source(recipe.log.source(getattr(recipe.split.files, name)), raw_dir, recipe.root)
             for name in SPLITS]
    files = tuple(f for _, o in parts for f in o.files)
    table = _unify([t for t, _ in parts], tuple(o.files[0] for _, o in parts))
    sizes = [t.num_rows for t, _ in parts]
    offsets = np.cumsum([0] + sizes[:-1])
    starts = tuple(int(off + s) for off, (_, o) in zip(offsets, parts) for s in o.starts)
    split = np.repeat(np.arange(len(SPLITS), dtype=np.int8), sizes)
    return table, Origin(files, starts), split


@dataclass(frozen=True)
class Side:
    """A side table ready to join: its frame (with a row-number column), Origin and key."""

    frame: pd.DataFrame
    origin: Origin
    key: str
    row_column: str


def read_sides(recipe: Recipe, raw_dir: Path | None) -> list[Side]:
    """Every side table in memory (they are small), with its key checked unique."""
    sides = []
    for j, join in enumerate(recipe.joins):
        table, origin = read_source(join.source, raw_dir, recipe.root)
        side = _frame(table)
        if join.key not in side.columns:
            raise RawDataError(f"{origin}: join key column {join.key!r} not found; columns are {list(side.columns)}")
        dup = side[join.key].duplicated().to_numpy()
        if dup.any():
            raise RawLog(side, {join.key: origin}).first_bad(join.key, dup, "appears more than once")
        row_column = f"__join{j}_row"
        side[row_column] = np.arange(len(side), dtype=np.int64)
        sides.append(Side(side, origin, join.key, row_column))
    return sides


def join_sides(raw: RawLog, sides: list[Side], recipe: Recipe) -> RawLog:
    """Left-joins the side tables onto the log rows and checks every column the recipe uses."""
    frame, sources, rows = raw.frame, dict(raw.sources), dict(raw.rows)
    log_origin = next(iter(sources.values()))
    for side in sides:
        if side.key not in frame.columns:
            raise RawDataError(f"{log_origin}: join key column {side.key!r} not found; columns are {list(frame.columns)}")
        clash = sorted((set(side.frame.columns) & set(frame.columns)) - {side.key})
        if clash:
            raise RawDataError(f"{side.origin}: column(s) {clash} already come from {[str(sources[c]) for c in clash]}")
        missing = ~frame[side.key].isin(side.frame[side.key]).to_numpy()
        if missing.any():
            raise RawLog(frame, sources, rows).first_bad(side.key, missing, f"has no row in {side.origin}")
        index = frame.index
        frame = frame.merge(side.frame, on=side.key, how="left", validate="many_to_one")
        frame.index = index
        sources.update({c: side.origin for c in side.frame.columns if c != side.key})
        rows.update({c: side.row_column for c in side.frame.columns if c not in (side.key, side.row_column)})
    files = sorted({str(p) for o in sources.values() for p in o.files})
    for column in _needed(recipe):
        if column not in frame.columns:
            shown = [c for c in frame.columns if not c.startswith("__join")]
            raise RawDataError(f"{files if len(files) < 6 else str(log_origin)}: column {column!r} not found; "
                               f"columns are {shown}")
    return RawLog(frame, sources, rows, raw.split)


def load_raw(recipe: Recipe, raw_dir: Path | None = None) -> RawLog:
    """Reads the log, left-joins the side tables and checks every column the recipe uses."""
    table, log_origin, preset = _read_log(recipe, raw_dir)
    frame = _frame(table)
    raw = RawLog(frame, {c: log_origin for c in frame.columns}, {}, preset)
    raw = join_sides(raw, read_sides(recipe, raw_dir), recipe)
    check_rules(raw, recipe)
    return raw


def rule_columns(recipe: Recipe) -> list[str]:
    """Columns whose present values `check_rules` needs."""
    columns = [t.column for t in recipe.tasks if t.positive is not None]
    return columns + ([recipe.domain.column] if recipe.domain.map is not None else [])


def present_values(raw: RawLog, recipe: Recipe) -> dict[str, set[str]]:
    return {c: set(canonical(raw.frame[c]).dropna().unique()) for c in rule_columns(recipe)}


def check_rules(raw: RawLog, recipe: Recipe, present: dict[str, set[str]] | None = None) -> None:
    """Every value a recipe rule names must occur in the log: a `positive` label value or a
    `domain.map` key that never appears is a typo, which would otherwise give an all-zero task
    or an empty domain silently. `present`: column -> values seen (streaming: over every batch)."""
    present = present_values(raw, recipe) if present is None else present
    for task in recipe.tasks:
        if task.positive is not None:
            for value in task.positive:
                if canonical_scalar(value) not in present[task.column]:
                    raise RawDataError(f"{raw.where(task.column)}: task {task.output!r}: positive value {value!r} "
                                       f"never appears in column {task.column!r} "
                                       f"(values: {_some(present[task.column])})")
    if recipe.domain.map is not None:
        column = recipe.domain.column
        for value in recipe.domain.map:
            if canonical_scalar(value) not in present[column]:
                raise RawDataError(f"{raw.where(column)}: domain.map: value {value!r} never appears in column "
                                   f"{column!r} (values: {_some(present[column])})")


def _some(values: set[str], limit: int = 8) -> str:
    shown = sorted(values)[:limit]
    return ", ".join(repr(v) for v in shown) + (", ..." if len(values) > limit else "")


def split_ids(raw: RawLog, split: Split, first_day: pd.Timestamp | None = None, check: bool = True) -> np.ndarray:
    """[N] int in {0, 1, 2} (train, valid, test) by the recipe's split kind (`first_day`: the
    log's first day when `raw` is one batch of it; `check`: every split must have rows)."""
    if split.kind == "files":
        ids = raw.split
    elif split.kind == "random":
        ids = random_split_ids(raw, split.random)
    else:
        ids = day_split_ids(raw, split.day, first_day)
    for i, name in enumerate(SPLITS if check else ()):
        if not (ids == i).any():
            column = split.column or (split.random.key if split.random else None) or "split"
            raise RawDataError(f"{raw.where(column) if column in raw.sources else 'split'}: split {name!r} has no rows "
                               f"({split.kind} split)")
    return ids


def random_split_ids(raw: RawLog, rule: RandomSplit) -> np.ndarray:
    """[N] split ids from a hash of the key column's values (rows of one key stay together,
    whatever the row order) or of the row number in the log."""
    if rule.key is None:
        h = raw.frame.index.to_numpy().astype(np.uint64)
    else:
        values = canonical(raw.frame[rule.key])
        missing = values.isna().to_numpy()
        if missing.any():
            raise raw.first_bad(rule.key, missing, "is missing (split.random.key needs a value in every row)")
        h = fnv1a64(pa.array(values.to_numpy(object), pa.string()))
    return assign(uniform(h, rule.seed), rule.valid, rule.test)


def dates_of(raw: RawLog, split: DaySplit) -> pd.Series:
    """The split column as datetimes; an unparseable value is an error naming its row."""
    values = raw.frame[split.column]
    if pd.api.types.is_datetime64_any_dtype(values):
        dates = values
    else:
        dates = pd.to_datetime(canonical(values), format=split.format, errors="coerce")
    bad = dates.isna().to_numpy()
    if bad.any():
        raise raw.first_bad(split.column, bad, f"is not a date of format {split.format!r}")
    return dates


def day_split_ids(raw: RawLog, split: DaySplit, first_day: pd.Timestamp | None = None) -> np.ndarray:
    """[N] int in {0, 1, 2} (train, valid, test) by calendar day since the log's first day."""
    dates = dates_of(raw, split)
    first_day = dates.min().normalize() if first_day is None else first_day
    day = (dates.dt.normalize() - first_day).dt.days.to_numpy()
    ends = np.cumsum([split.train_days, split.valid_days, split.test_days])
    late = day >= ends[-1]
    if late.any():
        raise raw.first_bad(split.column, late, f"falls after the split's {ends[-1]} days")
    return np.searchsorted(ends[:-1], day, side="right")


def canonical(values: pd.Series) -> pd.Series:
    """Raw categories as strings so 7, 7.0 and "7" share one vocabulary entry; missing stays NA.

    Value by value (an integral float loses its `.0`, 7.5 stays "7.5"), so a batch of rows
    gets the same strings as the whole column: the streaming path relies on it."""
    if not pd.api.types.is_float_dtype(values):
        return values.astype("string")
    x = values.to_numpy(np.float64)
    with np.errstate(invalid="ignore"):
        integral = np.isfinite(x) & (x % 1 == 0) & (np.abs(x) < 2.0 ** 53)
    text = values.astype("string")
    if integral.any():
        text[integral] = pd.Series(x[integral].astype(np.int64), index=values.index[integral]).astype("string")
    return text


def canonical_scalar(value: object) -> str:
    """The canonical string of one recipe value (a YAML 7, 7.0 or "7" -> "7")."""
    return str(canonical(pd.Series([value])).iloc[0])


def _ranked(values: pd.Series, min_count: int) -> pd.DataFrame:
    """Values seen at least `min_count` times, by count descending then value (deterministic)."""
    return ranked_counts(canonical(values).value_counts(dropna=True), min_count)


def ranked_counts(counts: pd.Series, min_count: int) -> pd.DataFrame:
    """`_ranked` from counts (value -> count; the streaming path sums them over batches)."""
    counts = counts[counts >= min_count]
    ranked = pd.DataFrame({"value": counts.index.astype("string"), "count": counts.to_numpy(np.int64)})
    return ranked.sort_values(["count", "value"], ascending=[False, True], kind="stable", ignore_index=True)


def fit_vocab(values: pd.Series, min_count: int) -> pd.DataFrame:
    """Vocabulary (value, count, id) with ids 1..V; rarer values will encode to OOV 0."""
    return vocab_of(_ranked(values, min_count))


def vocab_of(ranked: pd.DataFrame) -> pd.DataFrame:
    ranked["id"] = np.arange(1, len(ranked) + 1, dtype=np.int64)
    return ranked


def encode_with_vocab(values: pd.Series, vocab: pd.DataFrame) -> np.ndarray:
    """[N] int64 ids from a fitted vocabulary; unknown and missing values get OOV 0."""
    position = pd.Index(vocab["value"].astype("string")).get_indexer(canonical(values))
    ids = np.concatenate([[OOV], vocab["id"].to_numpy(np.int64)])
    return ids[position + 1]


def _numeric(raw: RawLog, column: str) -> pd.Series:
    values = raw.frame[column]
    numbers = pd.to_numeric(values, errors="coerce")
    bad = (numbers.isna() & values.notna()).to_numpy()
    if bad.any():
        raise raw.first_bad(column, bad, "is not a number")
    return numbers.astype(np.float64)


def bucket_ids(x: pd.Series, rule: Buckets, boundaries: tuple[float, ...] = ()) -> pd.Series:
    """Bucket index per value (nullable Int64; missing stays missing) under one Buckets rule."""
    v = x.to_numpy(np.float64)
    with np.errstate(invalid="ignore"):
        if rule.quantiles is not None:
            b = np.searchsorted(np.asarray(boundaries, np.float64), v, side="right").astype(np.float64)
        elif rule.width is not None:
            b = np.floor(v / rule.width)
        else:
            b = np.sign(v) * np.floor(np.log1p(np.abs(v)) / np.log(rule.log_base))
    return pd.Series(np.where(np.isnan(v), np.nan, b), index=x.index).astype("Int64")


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


@dataclass(frozen=True)
class Encoders:
    """Everything fitted on the training split; applying it to any rows encodes them the same way.

    vocabs: feature -> DataFrame(value, count, id); boundaries: quantile feature -> cut points;
    dense: feature -> (mean, std) after the optional signed log1p; domains: domain names by id.
    """

    vocabs: dict[str, pd.DataFrame]
    boundaries: dict[str, tuple[float, ...]]
    dense: dict[str, tuple[float, float]]
    domains: tuple[str, ...]

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name, vocab in self.vocabs.items():
            table = pa.table({
                "value": pa.array(vocab["value"].to_numpy(object), pa.string()),
                "count": pa.array(vocab["count"].to_numpy(np.int64)),
                "id": pa.array(vocab["id"].to_numpy(np.int64)),
            })
            pq.write_table(table, directory / f"{name}.parquet", compression="zstd")
        fitted = {
            "boundaries": {k: list(v) for k, v in self.boundaries.items()},
            "dense": {k: {"mean": m, "std": s} for k, (m, s) in self.dense.items()},
            "domains": list(self.domains),
        }
        (directory / "encoders.json").write_text(json.dumps(fitted, indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> "Encoders":
        """Loads `<out>/vocab` (or `<out>`, the data set directory holding it)."""
        directory = Path(directory)
        if (directory / "vocab").is_dir():
            directory = directory / "vocab"
        fitted = json.loads((directory / "encoders.json").read_text())
        vocabs = {p.stem: pd.read_parquet(p) for p in sorted(directory.glob("*.parquet"))}
        return cls(
            vocabs=vocabs,
            boundaries={k: tuple(v) for k, v in fitted["boundaries"].items()},
            dense={k: (v["mean"], v["std"]) for k, v in fitted["dense"].items()},
            domains=tuple(fitted["domains"]),
        )


def _sparse_values(raw: RawLog, feature: SparseSpec, boundaries: dict[str, tuple[float, ...]]) -> pd.Series:
    if feature.buckets is None:
        return raw.frame[feature.column]
    x = _numeric(raw, feature.column)
    return bucket_ids(x, feature.buckets, boundaries.get(feature.output, ()))


def fit_encoders(train: RawLog, recipe: Recipe) -> Encoders:
    """Fits vocabularies, quantile boundaries, dense statistics and domains on `train` only."""
    boundaries = {}
    for f in recipe.sparse:
        if f.buckets is not None and f.buckets.quantiles is not None:
            x = _numeric(train, f.column).dropna().to_numpy()
            if x.size == 0:
                raise RawDataError(f"{train.where(f.column)}: column {f.column!r} has no values in the training split")
            boundaries[f.output] = quantile_cuts(x, f.buckets.quantiles)
    vocabs = {f.output: fit_vocab(_sparse_values(train, f, boundaries), recipe.min_count_of(f)) for f in recipe.sparse}
    dense = {}
    for d in recipe.dense:
        dense[d.output] = dense_stats(_numeric(train, d.column).to_numpy(), d, train.where(d.column))
    domains = domain_list(_ranked(domain_values(train, recipe.domain), max(recipe.domain.min_rows, 1)))
    return Encoders(vocabs, boundaries, dense, domains)


def quantile_cuts(x: np.ndarray, quantiles: int) -> tuple[float, ...]:
    """Cut points of `quantiles` equal-frequency buckets of the training values x [N] (no NaN)."""
    q = np.arange(1, quantiles) / quantiles
    return tuple(float(b) for b in np.unique(np.quantile(x, q)))


def dense_stats(x: np.ndarray, d: DenseSpec, where: str) -> tuple[float, float]:
    """(mean, std) of the training values x [N] (NaN = missing) after the optional log1p."""
    t = _signed_log1p(x) if d.log1p else x
    if np.isnan(t).all():
        raise RawDataError(f"{where}: column {d.column!r} has no values in the training split")
    std = float(np.nanstd(t))
    return float(np.nanmean(t)), std if std > 0 else 1.0


def domain_list(ranked: pd.DataFrame) -> tuple[str, ...]:
    kept = tuple(ranked["value"])
    return tuple(d for d in kept if d != OTHER) + (OTHER,)  # always last: any later row can be encoded


def labels(raw: RawLog, task: Task) -> np.ndarray:
    """[N] int8 labels of one task: the 0/1 column itself, or 1 where the raw value is one of
    `positive` (as strings), or 1 where the number is >= `threshold`; a missing value is an error."""
    column = task.column
    values = raw.frame[column]
    if task.positive is not None:
        text = canonical(values)
        missing = text.isna().to_numpy()
        if missing.any():
            raise raw.first_bad(column, missing, f"is missing (task {task.output!r} needs a label in every row)")
        positive = [canonical_scalar(v) for v in task.positive]
        return text.isin(positive).to_numpy().astype(np.int8)
    if task.threshold is not None:
        x = _numeric(raw, column).to_numpy()
        missing = np.isnan(x)
        if missing.any():
            raise raw.first_bad(column, missing, f"is missing (task {task.output!r} needs a label in every row)")
        return (x >= task.threshold).astype(np.int8)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = ~numbers.isin([0, 1]).to_numpy()
    if bad.any():
        raise raw.first_bad(column, bad, "is not a label in {0, 1} (set `positive` or `threshold` to derive one)")
    return numbers.to_numpy().astype(np.int8)


def domain_values(raw: RawLog, domain: Domain) -> pd.Series:
    """The domain name of each row as a string: the raw value, or its `map` entry (values the
    map does not name, and missing values, -> "other")."""
    values = canonical(raw.frame[domain.column])
    if domain.map is None:
        return values
    mapping = {canonical_scalar(k): v for k, v in domain.map.items()}
    return values.map(mapping).fillna(OTHER).astype("string")


def group_column(recipe: Recipe) -> str | None:
    """The raw column of the recipe's group feature (`group` names a sparse feature's output)."""
    if recipe.group is None:
        return None
    return next(f.column for f in recipe.sparse if f.output == recipe.group)


def encode(raw: RawLog, recipe: Recipe, encoders: Encoders) -> pa.Table:
    """The Parquet table of `raw`: int64 sparse ids, float32 dense, int8 labels, int64 domain."""
    columns: dict[str, pa.Array] = {}
    for f in recipe.sparse:
        ids = encode_with_vocab(_sparse_values(raw, f, encoders.boundaries), encoders.vocabs[f.output])
        columns[f.output] = pa.array(ids, pa.int64())
    for d in recipe.dense:
        x = _numeric(raw, d.column).to_numpy()
        mean, std = encoders.dense[d.output]
        z = ((_signed_log1p(x) if d.log1p else x) - mean) / std
        columns[d.output] = pa.array(np.nan_to_num(z, nan=0.0).astype(np.float32))
    for t in recipe.tasks:
        columns[t.output] = pa.array(labels(raw, t))
    position = pd.Index(encoders.domains).get_indexer(domain_values(raw, recipe.domain))
    domain = np.where(position >= 0, position, encoders.domains.index(OTHER))
    columns[DOMAIN_COLUMN] = pa.array(domain.astype(np.int64))
    if recipe.group is not None:
        columns[GROUP_COLUMN] = pa.array(group_ids(raw.frame[group_column(recipe)]))
    columns[ID_COLUMN] = pa.array(raw.frame.index.to_numpy().astype(np.int64))
    return pa.table(columns)


def group_ids(values: pd.Series) -> np.ndarray:
    """GAUC group of each row from the *raw* group column (not its OOV-folded encoding, which
    would pool every rare user into one group): integer ids as they are, anything else hashed
    (stable across splits and runs)."""
    numeric = pd.to_numeric(values, errors="coerce")
    if pd.api.types.is_integer_dtype(numeric):
        return numeric.to_numpy().astype(np.int64)
    # value by value (a batch gets the ids the whole column would): integral numbers as they
    # are, anything else hashed
    x = numeric.to_numpy(np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        integral = np.isfinite(x) & (x % 1 == 0) & (np.abs(x) < 2.0 ** 53)
    hashed = pd.util.hash_array(values.astype(str).to_numpy()).view(np.int64)
    return np.where(integral, np.where(integral, x, 0).astype(np.int64), hashed)


def build_spec(recipe: Recipe, encoders: Encoders) -> DatasetSpec:
    """The spec of the prepared data: one table per sparse feature of size V + 1 (OOV 0)."""
    sparse = tuple(
        SparseFeature(f.output, len(encoders.vocabs[f.output]) + 1, recipe.dim_of(f), f.role,
                      task_specific=f.task_specific)
        for f in recipe.sparse
    )
    return DatasetSpec(
        sparse_features=sparse,
        dense_features=tuple(d.output for d in recipe.dense),
        tasks=tuple(t.output for t in recipe.tasks),
        domains=encoders.domains,
        domain_column=DOMAIN_COLUMN,
        group_column=GROUP_COLUMN if recipe.group is not None else None,
        id_column=ID_COLUMN,
    )


@dataclass
class SplitStats:
    """Counts `prepare.json` reports of one split: rows, positives [task], OOV rows [feature],
    rows per domain [D]. Summed batch by batch on the streaming path (`add`)."""

    rows: int
    positives: dict[str, int]
    oov: dict[str, int]
    domains: np.ndarray

    @classmethod
    def of(cls, table: pa.Table, spec: DatasetSpec) -> "SplitStats":
        return cls(table.num_rows, {t: int(np.sum(table[t].to_numpy() == 1)) for t in spec.tasks},
                   {f: int(np.sum(table[f].to_numpy() == OOV)) for f in spec.feature_names},
                   np.bincount(table[DOMAIN_COLUMN].to_numpy(), minlength=spec.num_domains))

    def add(self, other: "SplitStats") -> "SplitStats":
        return SplitStats(self.rows + other.rows, {k: v + other.positives[k] for k, v in self.positives.items()},
                          {k: v + other.oov[k] for k, v in self.oov.items()}, self.domains + other.domains)


def _summary(recipe: Recipe, spec: DatasetSpec, stats: dict[str, SplitStats]) -> dict:
    def rate(count: int, rows: int) -> float:
        return round(count / rows, 6)

    return {
        "recipe": {k: v for k, v in to_dict(recipe).items() if k != "root"},  # machine-independent bytes
        "rows": {s: t.rows for s, t in stats.items()},
        "positive_rate": {s: {task: rate(t.positives[task], t.rows) for task in spec.tasks} for s, t in stats.items()},
        "domain_rows": {s: dict(zip(spec.domains, t.domains.tolist())) for s, t in stats.items()},
        "oov_rate": {s: {f: rate(t.oov[f], t.rows) for f in spec.feature_names} for s, t in stats.items()},
    }


def warnings_of(recipe: Recipe, encoders: Encoders, summary: dict, stats: dict[str, SplitStats]) -> list[str]:
    """What prepare could do but the user should know: features mostly out of vocabulary in
    valid/test, quantile rules that gave fewer buckets than asked (ties in the training
    values), tasks with too few positives in valid/test to measure."""
    found = []
    for f in recipe.sparse:
        if f.buckets is not None and f.buckets.quantiles is not None:
            got = len(encoders.boundaries[f.output]) + 1
            if got < f.buckets.quantiles:
                found.append(f"feature {f.output!r}: buckets.quantiles asked {f.buckets.quantiles} buckets, got {got} "
                             f"(tied training values of column {f.column!r} share cut points)")
    for split in ("valid", "test"):
        for name, rate in summary["oov_rate"][split].items():
            if rate >= OOV_WARN_RATE:
                found.append(f"feature {name!r}: {rate:.0%} of {split} rows are out of vocabulary (id 0); lower its "
                             "min_count or bucket it")
        for task in (t.output for t in recipe.tasks):
            positives = stats[split].positives[task]
            if positives < MIN_POSITIVES:
                found.append(f"task {task!r}: {positives} positive(s) in {split} (< {MIN_POSITIVES}); its {split} "
                             "metrics are noise")
    return found


def prepare(recipe: Recipe, out: str | Path, raw_dir: Path | None = None, streaming: bool = False,
            batch_rows: int | None = None) -> dict:
    """Runs the whole preparation; nothing is written until every split has been encoded.

    `streaming`: two bounded-memory passes over record batches instead (`ray_jobs.data.stream`),
    for logs larger than memory; the output is byte-identical. `out` is local (a file:// URI is
    its path; a bucket is refused: prepare locally, then copy the directory there)."""
    out = local_path(out, "--out", "prepare")
    if streaming:
        from ray_jobs.data.stream import prepare_streaming

        return prepare_streaming(recipe, out, raw_dir, batch_rows)
    raw = load_raw(recipe, raw_dir)
    split = split_ids(raw, recipe.split)
    parts = {name: raw.take(split == i) for i, name in enumerate(SPLITS)}
    encoders = fit_encoders(parts["train"], recipe)
    tables = {name: encode(part, recipe, encoders) for name, part in parts.items()}
    spec = build_spec(recipe, encoders)

    def place(out: Path) -> None:
        for name, table in tables.items():
            (out / name).mkdir()
            pq.write_table(table, out / name / PART, compression="zstd", row_group_size=ROW_GROUP_ROWS)

    return write_dataset(out, recipe, encoders, spec, {n: SplitStats.of(t, spec) for n, t in tables.items()}, place)


def write_dataset(out: str | Path, recipe: Recipe, encoders: Encoders, spec: DatasetSpec,
                  stats: dict[str, SplitStats], place: Callable[[Path], None]) -> dict:
    """Replaces `out`'s data set: stale splits and the marker go first, `place(out)` puts the
    split files, then the encoders, the spec and finally prepare.json (the completion marker)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).unlink(missing_ok=True)
    for stale in (*SPLITS, "vocab"):
        shutil.rmtree(out / stale, ignore_errors=True)
    encoders.save(out / "vocab")
    spec.save(out)
    place(out)
    summary = _summary(recipe, spec, stats)
    summary["warnings"] = warnings_of(recipe, encoders, summary, stats)
    for warning in summary["warnings"]:
        logger.warning("prepare: %s", warning)
    (out / MARKER).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
