"""Streaming prepare: a log larger than memory, in passes over record batches.

`python -m ray_jobs.prepare <recipe> --out <dir> --stream`. The raw files are read as bounded
record batches (pyarrow's streaming CSV reader, Parquet's batch iterator), each batch joined
with the (in-memory) side tables and handled by the same functions as the in-memory path:

    pass 0 (day split only): the log's first day
    pass 1: split ids; training counts of every vocabulary and of the domains, summed over
            batches; the training values of quantile-bucketed and dense columns (8 bytes a row
            each: the exact cut points and statistics need them); values the rules name
    pass 2: encode each batch with the fitted encoders and append it to its split's Parquet
            file, in row groups of ROW_GROUP_ROWS rows, the same as `pq.write_table` writes

so the output is byte-identical to the in-memory path (tests/ray_jobs/test_prepare_stream.py).
Memory: one batch, the vocabulary counts (distinct values, not rows), one row group per split,
and the numeric training columns above. Nothing is written outside `<out>/.staging` until
every split has been encoded; an error removes it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ray_jobs.core.errors import RawDataError
from ray_jobs.data import prepare as P
from ray_jobs.data.dataset import SPLITS
from ray_jobs.data.readers import Origin, iter_batches
from ray_jobs.data.recipe import Recipe, Source

DEFAULT_BATCH_ROWS = 1 << 18
MERGE_EVERY = 16  # per-batch value counts are summed every this many batches (bounds their memory)


class _Counts:
    """Value counts summed over batches (pandas Series: value -> count)."""

    def __init__(self) -> None:
        self.parts: list[pd.Series] = []

    def add(self, counts: pd.Series) -> None:
        self.parts.append(counts)
        if len(self.parts) >= MERGE_EVERY:
            self.parts = [self.total()]

    def total(self) -> pd.Series:
        if not self.parts:
            return pd.Series([], dtype=np.int64, index=pd.Index([], dtype="string"))
        return pd.concat(self.parts).groupby(level=0, sort=False).sum()


def _inputs(recipe: Recipe, raw_dir: Path | None) -> list[tuple[Source, Path, int | None]]:
    """(reader, file, split id of pre-split inputs or None) of every log file, in row order."""
    if recipe.split.kind != "files":
        source = recipe.log.source()
        return [(source, path, None) for path in source.files(raw_dir, recipe.root)]
    entries = []
    for i, name in enumerate(SPLITS):
        source = recipe.log.source(getattr(recipe.split.files, name))
        entries += [(source, path, i) for path in source.files(raw_dir, recipe.root)]
    return entries


def _stream(recipe: Recipe, raw_dir: Path | None, sides: list[P.Side], batch_rows: int) -> Iterator[P.RawLog]:
    """The joined log as RawLog batches; frame index = row number in the stacked log."""
    entries = _inputs(recipe, raw_dir)
    files = tuple(path for _, path, _ in entries)
    starts: list[int] = []
    offset = 0
    for k, (source, path, split) in enumerate(entries):
        starts.append(offset)
        origin = Origin(files[:k + 1], tuple(starts))
        first = offset
        try:
            for batch in iter_batches(source, (path,), batch_rows=batch_rows):
                if batch.num_rows == 0:
                    continue
                frame = P._frame(pa.Table.from_batches([batch]))
                frame.index = pd.RangeIndex(offset, offset + len(frame))
                preset = None if split is None else np.full(len(frame), split, dtype=np.int8)
                yield P.join_sides(P.RawLog(frame, {c: origin for c in frame.columns}, {}, preset), sides, recipe)
                offset += len(frame)
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                raise RawDataError(f"{path}: file is empty") from exc
            raise RawDataError(f"{path}: cannot read: {exc} (a column's type is inferred from the first block; "
                               "set it under `types`)") from exc
        if offset == first:
            raise RawDataError(f"{path}: file has no rows")


class _SplitWriter:
    """Appends encoded batches to one Parquet file in row groups of exactly ROW_GROUP_ROWS
    rows (the last one shorter), as `pq.write_table` cuts one whole table."""

    def __init__(self, path: Path) -> None:
        self.path, self.writer, self.buffer, self.rows = path, None, [], 0

    def write(self, table: pa.Table) -> None:
        self.buffer.append(table)
        self.rows += table.num_rows
        while self.rows >= P.ROW_GROUP_ROWS:
            whole = pa.concat_tables(self.buffer).combine_chunks()
            self._flush(whole.slice(0, P.ROW_GROUP_ROWS))
            rest = whole.slice(P.ROW_GROUP_ROWS)
            self.buffer, self.rows = ([rest] if rest.num_rows else []), rest.num_rows

    def _flush(self, table: pa.Table) -> None:
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self.writer.write_table(table, row_group_size=P.ROW_GROUP_ROWS)

    def close(self) -> None:
        if self.buffer:
            self._flush(pa.concat_tables(self.buffer).combine_chunks())
        if self.writer is not None:
            self.writer.close()


def prepare_streaming(recipe: Recipe, out: str | Path, raw_dir: Path | None = None,
                      batch_rows: int | None = None) -> dict:
    """`prepare` in bounded-memory passes over record batches (module docstring)."""
    batch_rows = batch_rows or DEFAULT_BATCH_ROWS
    sides = P.read_sides(recipe, raw_dir)

    def stream() -> Iterator[P.RawLog]:
        return _stream(recipe, raw_dir, sides, batch_rows)

    first_day = None
    if recipe.split.kind == "day":
        first_day = min(P.dates_of(raw, recipe.split.day).min().normalize() for raw in stream())

    quantile = {f.output: f for f in recipe.sparse if f.buckets is not None and f.buckets.quantiles is not None}
    counted = [f for f in recipe.sparse if f.output not in quantile]
    numeric_columns = list(dict.fromkeys([f.column for f in quantile.values()] + [d.column for d in recipe.dense]))
    counts = {f.output: _Counts() for f in counted}
    domain_counts = _Counts()
    numeric: dict[str, list[np.ndarray]] = {c: [] for c in numeric_columns}
    present: dict[str, set[str]] = {c: set() for c in P.rule_columns(recipe)}
    split_rows = np.zeros(len(SPLITS), dtype=np.int64)
    last = None
    for raw in stream():
        last = raw
        ids = P.split_ids(raw, recipe.split, first_day, check=False)
        split_rows += np.bincount(ids, minlength=len(SPLITS))
        for column, seen in present.items():
            seen.update(P.canonical(raw.frame[column]).dropna().unique())
        train = raw.take(ids == 0)
        if len(train.frame) == 0:
            continue
        for f in counted:
            counts[f.output].add(P.canonical(P._sparse_values(train, f, {})).value_counts(dropna=True))
        for column in numeric_columns:
            numeric[column].append(P._numeric(train, column).to_numpy())
        domain_counts.add(P.canonical(P.domain_values(train, recipe.domain)).value_counts(dropna=True))
    for i, name in enumerate(SPLITS):
        if split_rows[i] == 0:
            raise RawDataError(f"{last.where(recipe.split.column) if recipe.split.column else 'split'}: split {name!r} "
                               f"has no rows ({recipe.split.kind} split)")
    P.check_rules(last, recipe, present)

    values = {c: np.concatenate(parts) for c, parts in numeric.items()}
    boundaries = {}
    for name, f in quantile.items():
        x = values[f.column][~np.isnan(values[f.column])]
        if x.size == 0:
            raise RawDataError(f"{last.where(f.column)}: column {f.column!r} has no values in the training split")
        boundaries[name] = P.quantile_cuts(x, f.buckets.quantiles)
    vocabs = {}
    for f in recipe.sparse:
        if f.output in quantile:
            buckets = P.bucket_ids(pd.Series(values[f.column]), f.buckets, boundaries[f.output])
            vocabs[f.output] = P.fit_vocab(buckets, recipe.min_count_of(f))
        else:
            vocabs[f.output] = P.vocab_of(P.ranked_counts(counts[f.output].total(), recipe.min_count_of(f)))
    dense = {d.output: P.dense_stats(values[d.column], d, last.where(d.column)) for d in recipe.dense}
    domains = P.domain_list(P.ranked_counts(domain_counts.total(), max(recipe.domain.min_rows, 1)))
    encoders = P.Encoders(vocabs, boundaries, dense, domains)
    del values, numeric
    spec = P.build_spec(recipe, encoders)

    out = Path(out)
    created = not out.exists()
    staging = out / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    writers = {name: _SplitWriter(staging / name / P.PART) for name in SPLITS}
    stats: dict[str, P.SplitStats] = {}
    try:
        for raw in stream():
            ids = P.split_ids(raw, recipe.split, first_day, check=False)
            for i, name in enumerate(SPLITS):
                mask = ids == i
                if not mask.any():
                    continue
                table = P.encode(raw.take(mask), recipe, encoders)
                writers[name].write(table)
                part = P.SplitStats.of(table, spec)
                stats[name] = stats[name].add(part) if name in stats else part
        for writer in writers.values():
            writer.close()
    except BaseException:
        shutil.rmtree(out if created else staging, ignore_errors=True)
        raise

    def place(out: Path) -> None:
        for name in SPLITS:
            (staging / name).rename(out / name)
        staging.rmdir()

    return P.write_dataset(out, recipe, encoders, spec, {n: stats[n] for n in SPLITS}, place)
