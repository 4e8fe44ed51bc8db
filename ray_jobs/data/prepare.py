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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from modules.spec import DatasetSpec, SparseFeature
from modules.strict import to_dict
from ray_jobs.core.errors import RawDataError
from ray_jobs.data.dataset import SPLITS
from ray_jobs.data.recipe import DOMAIN_COLUMN, GROUP_COLUMN, ID_COLUMN, Buckets, Recipe, Source, Split, SparseSpec

OTHER = "other"
OOV = 0
MARKER = "prepare.json"
PART = "part-00000.parquet"


@dataclass(frozen=True)
class RawLog:
    """The joined raw rows (index = row number in the log file) and the file of each column."""

    frame: pd.DataFrame
    sources: dict[str, Path]

    def where(self, column: str) -> str:
        return str(self.sources.get(column, "input"))

    def take(self, mask: np.ndarray) -> "RawLog":
        return RawLog(self.frame[mask], self.sources)

    def first_bad(self, column: str, bad: np.ndarray, problem: str) -> RawDataError:
        """An error for the first row flagged in `bad`, quoting its raw value."""
        i = int(np.flatnonzero(bad)[0])
        value = self.frame[column].iloc[i]
        value = value.item() if isinstance(value, np.generic) else value
        row = self.frame.index[i]
        return RawDataError(f"{self.where(column)}: column {column!r}, row {row}: value {value!r} {problem}")


def read_table(source: Source, raw_dir: Path | None = None, root: str | Path | None = None) -> tuple[pd.DataFrame, Path]:
    """One raw file as a DataFrame with a 0..n-1 index; empty or missing files are errors."""
    path = source.resolve(raw_dir, root)
    if not path.is_file():
        raise RawDataError(f"{path}: file not found")
    fmt = source.file_format()
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",")
    except pd.errors.EmptyDataError as exc:
        raise RawDataError(f"{path}: file is empty") from exc
    if frame.empty:
        raise RawDataError(f"{path}: file has no rows")
    return frame.reset_index(drop=True), path


def load_raw(recipe: Recipe, raw_dir: Path | None = None) -> RawLog:
    """Reads the log, left-joins the side tables and checks every column the recipe uses."""
    frame, log_path = read_table(recipe.log, raw_dir, recipe.root)
    sources = {c: log_path for c in frame.columns}
    for join in recipe.joins:
        side, side_path = read_table(join.source, raw_dir, recipe.root)
        for table, path in ((frame, log_path), (side, side_path)):
            if join.key not in table.columns:
                raise RawDataError(f"{path}: join key column {join.key!r} not found")
        clash = sorted((set(side.columns) & set(frame.columns)) - {join.key})
        if clash:
            raise RawDataError(f"{side_path}: column(s) {clash} already come from {[str(sources[c]) for c in clash]}")
        dup = side[join.key].duplicated().to_numpy()
        if dup.any():
            raise RawLog(side, {join.key: side_path}).first_bad(join.key, dup, "appears more than once")
        missing = ~frame[join.key].isin(side[join.key]).to_numpy()
        if missing.any():
            raise RawLog(frame, sources).first_bad(join.key, missing, f"has no row in {side_path}")
        frame = frame.merge(side, on=join.key, how="left", validate="many_to_one")
        sources.update({c: side_path for c in side.columns if c != join.key})
    needed = [recipe.split.column, recipe.domain.column]
    needed += [t.column for t in recipe.tasks] + [f.column for f in recipe.sparse + recipe.dense]
    files = sorted({str(p) for p in sources.values()})
    for column in dict.fromkeys(needed):
        if column not in frame.columns:
            raise RawDataError(f"{files}: column {column!r} not found; columns are {list(frame.columns)}")
    return RawLog(frame, sources)


def split_ids(raw: RawLog, split: Split) -> np.ndarray:
    """[N] int in {0, 1, 2} (train, valid, test) by calendar day since the log's first day."""
    values = raw.frame[split.column]
    if pd.api.types.is_datetime64_any_dtype(values):
        dates = values
    else:
        dates = pd.to_datetime(canonical(values), format=split.format, errors="coerce")
    bad = dates.isna().to_numpy()
    if bad.any():
        raise raw.first_bad(split.column, bad, f"is not a date of format {split.format!r}")
    day = (dates.dt.normalize() - dates.min().normalize()).dt.days.to_numpy()
    ends = np.cumsum([split.train_days, split.valid_days, split.test_days])
    late = day >= ends[-1]
    if late.any():
        raise raw.first_bad(split.column, late, f"falls after the split's {ends[-1]} days")
    ids = np.searchsorted(ends[:-1], day, side="right")
    for i, name in enumerate(SPLITS):
        if not (ids == i).any():
            raise RawDataError(f"{raw.where(split.column)}: column {split.column!r}: split {name!r} has no rows")
    return ids


def canonical(values: pd.Series) -> pd.Series:
    """Raw categories as strings so 7, 7.0 and "7" share one vocabulary entry; missing stays NA."""
    if pd.api.types.is_float_dtype(values):
        present = values.dropna().to_numpy()
        if np.isfinite(present).all() and (present % 1 == 0).all():
            values = values.astype("Int64")
    return values.astype("string")


def _ranked(values: pd.Series, min_count: int) -> pd.DataFrame:
    """Values seen at least `min_count` times, by count descending then value (deterministic)."""
    counts = canonical(values).value_counts(dropna=True)
    counts = counts[counts >= min_count]
    ranked = pd.DataFrame({"value": counts.index.astype("string"), "count": counts.to_numpy(np.int64)})
    return ranked.sort_values(["count", "value"], ascending=[False, True], kind="stable", ignore_index=True)


def fit_vocab(values: pd.Series, min_count: int) -> pd.DataFrame:
    """Vocabulary (value, count, id) with ids 1..V; rarer values will encode to OOV 0."""
    vocab = _ranked(values, min_count)
    vocab["id"] = np.arange(1, len(vocab) + 1, dtype=np.int64)
    return vocab


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
            q = np.arange(1, f.buckets.quantiles) / f.buckets.quantiles
            boundaries[f.output] = tuple(float(b) for b in np.unique(np.quantile(x, q)))
    vocabs = {f.output: fit_vocab(_sparse_values(train, f, boundaries), recipe.min_count_of(f)) for f in recipe.sparse}
    dense = {}
    for d in recipe.dense:
        x = _numeric(train, d.column).to_numpy()
        t = _signed_log1p(x) if d.log1p else x
        if np.isnan(t).all():
            raise RawDataError(f"{train.where(d.column)}: column {d.column!r} has no values in the training split")
        std = float(np.nanstd(t))
        dense[d.output] = (float(np.nanmean(t)), std if std > 0 else 1.0)
    kept = tuple(_ranked(train.frame[recipe.domain.column], max(recipe.domain.min_rows, 1))["value"])
    domains = kept if OTHER in kept else kept + (OTHER,)
    return Encoders(vocabs, boundaries, dense, domains)


def _labels(raw: RawLog, column: str) -> np.ndarray:
    values = pd.to_numeric(raw.frame[column], errors="coerce")
    bad = ~values.isin([0, 1]).to_numpy()
    if bad.any():
        raise raw.first_bad(column, bad, "is not a label in {0, 1}")
    return values.to_numpy().astype(np.int8)


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
        columns[t.output] = pa.array(_labels(raw, t.column))
    position = pd.Index(encoders.domains).get_indexer(canonical(raw.frame[recipe.domain.column]))
    domain = np.where(position >= 0, position, encoders.domains.index(OTHER))
    columns[DOMAIN_COLUMN] = pa.array(domain.astype(np.int64))
    columns[GROUP_COLUMN] = pa.array(group_ids(raw.frame[recipe.group]))
    columns[ID_COLUMN] = pa.array(raw.frame.index.to_numpy().astype(np.int64))
    return pa.table(columns)


def group_ids(values: pd.Series) -> np.ndarray:
    """GAUC group of each row from the *raw* group column (not its OOV-folded encoding, which
    would pool every rare user into one group): integer ids as they are, anything else hashed
    (stable across splits and runs)."""
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all() and (numeric == numeric.round()).all():
        return numeric.to_numpy().astype(np.int64)
    return pd.util.hash_array(values.astype(str).to_numpy()).view(np.int64)


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
        group_column=GROUP_COLUMN,
        id_column=ID_COLUMN,
    )


def _summary(recipe: Recipe, spec: DatasetSpec, tables: dict[str, pa.Table]) -> dict:
    def rate(table: pa.Table, column: str, value: int = 1) -> float:
        return round(float(np.mean(table[column].to_numpy() == value)), 6)

    return {
        "recipe": {k: v for k, v in to_dict(recipe).items() if k != "root"},  # machine-independent bytes
        "rows": {s: t.num_rows for s, t in tables.items()},
        "positive_rate": {s: {task: rate(t, task) for task in spec.tasks} for s, t in tables.items()},
        "domain_rows": {
            s: dict(zip(spec.domains, np.bincount(t[DOMAIN_COLUMN].to_numpy(), minlength=spec.num_domains).tolist()))
            for s, t in tables.items()
        },
        "oov_rate": {s: {f: rate(t, f, OOV) for f in spec.feature_names} for s, t in tables.items()},
    }


def prepare(recipe: Recipe, out: str | Path, raw_dir: Path | None = None) -> dict:
    """Runs the whole preparation; nothing is written until every split has been encoded."""
    raw = load_raw(recipe, raw_dir)
    split = split_ids(raw, recipe.split)
    parts = {name: raw.take(split == i) for i, name in enumerate(SPLITS)}
    encoders = fit_encoders(parts["train"], recipe)
    tables = {name: encode(part, recipe, encoders) for name, part in parts.items()}
    spec = build_spec(recipe, encoders)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).unlink(missing_ok=True)
    for stale in (*SPLITS, "vocab"):
        shutil.rmtree(out / stale, ignore_errors=True)
    encoders.save(out / "vocab")
    spec.save(out)
    for name, table in tables.items():
        (out / name).mkdir()
        pq.write_table(table, out / name / PART, compression="zstd")
    summary = _summary(recipe, spec, tables)
    (out / MARKER).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
