"""Raw files -> Arrow tables: CSV/TSV/Parquet, one file, a directory or a glob of many.

The recipe's `Reader` options map onto pyarrow.csv's read/parse/convert options, so a
headerless file, a custom separator, extra missing-value markers or forced column types need
no pre-processing script. Many files are read one by one in sorted path order and stacked;
`Origin` remembers where each file's rows start, so an error can name the file and the row
*within that file* of a bad value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from ray_jobs.core.errors import RawDataError
from ray_jobs.data.recipe import Reader, Source

ARROW_TYPES = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}
CSV_BLOCK_BYTES = 16 << 20  # pyarrow.csv block size; bounds one streamed batch's raw bytes


@dataclass(frozen=True)
class Origin:
    """The files a column's rows came from: files [F] in read order and starts [F], the first
    stacked row of each, so stacked row r is row r - starts[i] of files[i]."""

    files: tuple[Path, ...]
    starts: tuple[int, ...]

    def locate(self, row: int) -> tuple[Path, int]:
        i = int(np.searchsorted(np.asarray(self.starts), row, side="right")) - 1
        return self.files[i], row - self.starts[i]

    def __str__(self) -> str:
        return str(self.files[0]) if len(self.files) == 1 else f"{self.files[0].parent} ({len(self.files)} files)"


def _csv_options(reader: Reader, fmt: str) -> tuple[pcsv.ReadOptions, pcsv.ParseOptions, pcsv.ConvertOptions]:
    names = list(reader.names) if reader.names else None
    read = pcsv.ReadOptions(column_names=names, skip_rows=reader.skip_rows + (1 if reader.header and names else 0),
                            encoding=reader.encoding, block_size=CSV_BLOCK_BYTES)
    sep = reader.sep or ("\t" if fmt == "tsv" else ",")
    parse = pcsv.ParseOptions(delimiter=sep, quote_char=reader.quote_char or False)
    na = list(pcsv.ConvertOptions().null_values) + list(reader.na_values)
    if reader.strip:  # " ?" must be missing too, also in numeric columns pyarrow parses itself
        na += [f" {v}" for v in reader.na_values] + [f" {v} " for v in reader.na_values]
    types = {k: ARROW_TYPES[v] for k, v in (reader.types or {}).items()}
    convert = pcsv.ConvertOptions(null_values=na, strings_can_be_null=True, column_types=types)
    return read, parse, convert


def _clean(table: pa.Table, reader: Reader) -> pa.Table:
    """`strip`: trim string values, then match `na_values` again on the trimmed strings."""
    if not reader.strip:
        return table
    na = pa.array(list(reader.na_values), pa.string())
    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = pc.utf8_trim_whitespace(column)
            if len(na):
                column = pc.if_else(pc.is_in(column, value_set=na), pa.scalar(None, column.type), column)
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def read_file(path: Path, source: Source) -> pa.Table:
    """One raw file as an Arrow table; unreadable, empty or header-only files are RawDataErrors."""
    fmt = source.file_format(path)
    try:
        if fmt == "parquet":
            table = pq.read_table(path)
        else:
            table = _clean(pcsv.read_csv(path, *_csv_options(source, fmt)), source)
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):
            raise RawDataError(f"{path}: file is empty") from exc
        raise RawDataError(f"{path}: cannot read as {fmt}: {exc}") from exc
    if table.num_rows == 0:
        raise RawDataError(f"{path}: file has no rows")
    if source.names and fmt == "parquet":
        if len(source.names) != table.num_columns:
            raise RawDataError(f"{path}: names has {len(source.names)} entries, the file {table.num_columns} columns")
        table = table.rename_columns(list(source.names))
    return table


def _unify(tables: list[pa.Table], files: tuple[Path, ...]) -> pa.Table:
    """Stacks tables of one source: the same columns in each; a column whose inferred type
    differs between files becomes float64 when every file has it numeric, else string."""
    names = tables[0].column_names
    for table, path in zip(tables[1:], files[1:]):
        if table.column_names != names:
            raise RawDataError(f"{path}: columns {table.column_names} differ from {files[0]}'s {names}")
    if len(tables) == 1:
        return tables[0]
    schema = []
    for i, name in enumerate(names):
        kinds = {t.schema.field(i).type for t in tables} - {pa.null()}
        if len(kinds) <= 1:
            schema.append(pa.field(name, kinds.pop() if kinds else pa.null()))
        elif all(pa.types.is_integer(k) or pa.types.is_floating(k) for k in kinds):
            schema.append(pa.field(name, pa.float64()))
        else:
            schema.append(pa.field(name, pa.string()))
    schema = pa.schema(schema)
    return pa.concat_tables([t.cast(schema) for t in tables])


def read_source(source: Source, raw_dir: Path | None = None, root: str | Path | None = None) -> tuple[pa.Table, Origin]:
    """Every file of `source` stacked in sorted path order, and where each file's rows start."""
    files = source.files(raw_dir, root)
    tables = [read_file(p, source) for p in files]
    starts = tuple(int(s) for s in np.cumsum([0] + [t.num_rows for t in tables[:-1]]))
    return _unify(tables, files), Origin(files, starts)


def iter_batches(source: Source, files: tuple[Path, ...], columns: list[str] | None = None,
                 batch_rows: int = 1 << 20) -> Iterator[pa.RecordBatch]:
    """The rows of `files` in order as record batches of bounded size (the streaming path):
    pyarrow's streaming CSV reader or Parquet's batch iterator, never a whole file in memory."""
    for path in files:
        fmt = source.file_format(path)
        if fmt == "parquet":
            yield from pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns)
            continue
        read, parse, convert = _csv_options(source, fmt)
        if columns is not None:
            convert.include_columns = columns
        with pcsv.open_csv(path, read, parse, convert) as stream:
            for batch in stream:
                table = _clean(pa.Table.from_batches([batch]), source)
                yield from table.to_batches(max_chunksize=batch_rows)
