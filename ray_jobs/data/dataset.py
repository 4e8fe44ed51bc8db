"""Data sets on disk: locate the split files and validate them against the spec before training.

Validation reads Parquet metadata (schema, row counts, per-row-group min/max/null statistics)
and only the float columns' data (statistics skip NaN), so it is cheap even for large data
sets, yet catches a missing column, a wrong dtype, an id outside its table, a label outside
{0, 1}, an unknown domain, a null, a NaN or inf and an empty file, naming file, column and value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from modules.collision_config import RAW_ID_MAX
from modules.spec import SPEC_FILE, DatasetSpec
from modules.strict import ConfigError
from ray_jobs.core.errors import DataError
from ray_jobs.core.log import logger
from ray_jobs.core.storage import Location, is_uri, location, open_input

if TYPE_CHECKING:
    from ray_jobs.core.config import JobConfig

SPLITS = ("train", "valid", "test")
ID_COLUMN = "sample_id"  # the optional column of row ids that predictions carry, so runs join


@dataclass(frozen=True)
class SplitInfo:
    name: str
    files: tuple[str, ...]
    rows: int


def split_files(root: str | Path, split: str) -> list[str]:
    """Sorted Parquet files of one split (plain paths, or URIs under a URI root); an error if
    there are none."""
    directory = location(root).child(split)
    files = [str(p) for p in directory.files(".parquet")]
    if not files:
        raise DataError(f"{directory}: no Parquet files for split {split!r}")
    return files


def _check_type(path: str, name: str, actual: pa.DataType, expected: str) -> None:
    ok = {
        "int": pa.types.is_integer(actual),
        "list<int>": pa.types.is_list(actual) and pa.types.is_integer(actual.value_type),
        "number": pa.types.is_integer(actual) or pa.types.is_floating(actual) or pa.types.is_boolean(actual),
    }[expected]
    if not ok:
        raise DataError(f"{path}: column {name!r} has type {actual}, expected {expected}")


def _value_bounds(spec: DatasetSpec, raw: frozenset[str] = frozenset()) -> dict[str, tuple[float, float, str]]:
    """Column -> (inclusive min, inclusive max, what it is) for range-checked columns.

    `raw` columns hold raw 64-bit ids remapped into a bounded table (`modules.collision`):
    any id in [0, RAW_ID_MAX] is valid there; every other sparse column stays in [0, cardinality).
    """
    bounds = {f.name: (0, f.cardinality - 1, f"id of table {f.name!r}; raw 64-bit ids need the feature "
                                              f"listed under collision") for f in spec.sparse_features}
    bounds.update({name: (0, RAW_ID_MAX, f"raw id of bounded feature {name!r}") for name in raw})
    bounds[spec.domain_column] = (0, spec.num_domains - 1, f"domain id (domains {list(spec.domains)})")
    for task in spec.tasks:
        bounds[task] = (0, 1, "label")
    return bounds


def _scan_row_group(path: str, row_group: int, name: str) -> tuple[int, float | None, float | None]:
    """(nulls, min, max) of a column read from data, for files written without statistics."""
    column = pq.ParquetFile(open_input(path)).read_row_group(row_group, columns=[name]).column(name)
    nulls = column.null_count
    if pa.types.is_list(column.type):
        column = pc.list_flatten(column)
    if len(column) == column.null_count:
        return nulls, None, None
    bounds = pc.min_max(column)
    return nulls, bounds["min"].as_py(), bounds["max"].as_py()


def feature_columns(spec: DatasetSpec) -> tuple[str, ...]:
    """The columns a model reads (sparse, dense, domain): what rows to be scored must have."""
    return tuple(dict.fromkeys((*spec.feature_names, *spec.dense_features, spec.domain_column)))


def validate_file(path: str, spec: DatasetSpec, raw: frozenset[str] = frozenset(), labels: bool = True) -> int:
    """Checks one Parquet file against `spec` (`raw`: columns of raw 64-bit ids); returns its row count.

    `labels=False` checks rows to be scored: only the model's columns (`feature_columns`) are
    required; the group and id columns are checked when present, tasks are ignored.
    """
    try:
        meta = pq.ParquetFile(open_input(path)).metadata
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file: {exc}") from exc
    if meta.num_rows == 0:
        raise DataError(f"{path}: empty file (0 rows)")
    schema = meta.schema.to_arrow_schema()
    required = spec.required_columns() if labels else feature_columns(spec)
    for name in required:
        if name not in schema.names:
            raise DataError(f"{path}: missing column {name!r} (spec needs {list(required)})")
    for f in spec.sparse_features:
        _check_type(path, f.name, schema.field(f.name).type, "list<int>" if f.multi_hot else "int")
    _check_type(path, spec.domain_column, schema.field(spec.domain_column).type, "int")
    if spec.group_column is not None and spec.group_column in schema.names:
        _check_type(path, spec.group_column, schema.field(spec.group_column).type, "int")
    if spec.id_column is not None and spec.id_column in schema.names:
        _check_type(path, spec.id_column, schema.field(spec.id_column).type, "int")
    tasks = spec.tasks if labels else ()
    for name in (*spec.dense_features, *tasks):
        _check_type(path, name, schema.field(name).type, "number")

    bounds = _value_bounds(spec, raw)
    nullable = set(required) | ({spec.id_column} & set(schema.names))
    for rg in range(meta.num_row_groups):
        group = meta.row_group(rg)
        for c in range(group.num_columns):
            chunk = group.column(c)
            name = chunk.path_in_schema.split(".")[0]
            if name not in nullable:
                continue
            is_list_leaf = "." in chunk.path_in_schema
            stats = chunk.statistics
            if stats is None or not stats.has_min_max:
                nulls, low, high = _scan_row_group(path, rg, name)
            else:
                nulls, low, high = stats.null_count, stats.min, stats.max
            if nulls and not is_list_leaf:
                raise DataError(f"{path}: column {name!r} has {nulls} null value(s) in row group {rg}")
            if name in bounds and low is not None:
                lo, hi, what = bounds[name]
                if low < lo or high > hi:
                    bad = low if low < lo else high
                    raise DataError(f"{path}: column {name!r} has value {bad} outside [{lo}, {hi}] ({what})")
    _check_float_values(path, schema, spec.dense_features, tasks)
    return meta.num_rows


def _check_float_values(path: str, schema: pa.Schema, dense: tuple[str, ...], labels: tuple[str, ...]) -> None:
    """NaN/inf in float columns, and float labels other than 0 and 1 (a 0.5 is inside the
    statistics' [0, 1]). Parquet statistics skip NaN, so these columns are read."""
    floats = [n for n in (*dense, *labels) if pa.types.is_floating(schema.field(n).type)]
    if not floats:
        return
    table = pq.read_table(open_input(path), columns=floats)
    for name in floats:
        column = table.column(name)
        finite = pc.is_finite(column)
        if not pc.all(finite).as_py():
            row = pc.index(finite, False).as_py()
            raise DataError(f"{path}: column {name!r} has non-finite value {column[row].as_py()} at row {row}")
        if name in labels:
            binary = pc.is_in(column, value_set=pa.array([0.0, 1.0], column.type))
            if not pc.all(binary).as_py():
                row = pc.index(binary, False).as_py()
                raise DataError(f"{path}: column {name!r} has value {column[row].as_py()} at row {row} "
                                f"outside {{0, 1}} (label)")


def validate_split(root: str | Path, split: str, spec: DatasetSpec, raw: frozenset[str] = frozenset()) -> SplitInfo:
    files = split_files(root, split)
    rows = sum(validate_file(f, spec, raw) for f in files)
    return SplitInfo(split, tuple(files), rows)


@dataclass(frozen=True)
class Dataset:
    """A validated data set: its directory (a path or a storage URI), spec and the files + row
    count of each split."""

    root: str | Path
    spec: DatasetSpec
    splits: dict[str, SplitInfo]


def read_spec(root: str | Path | Location) -> DatasetSpec:
    """The spec.json of a data set or export directory, local or on storage."""
    place = location(root)
    if place.is_local:
        return DatasetSpec.load(place.local)
    spec_file = place.child(SPEC_FILE)
    if not spec_file.is_file():
        raise ConfigError(f"{spec_file}: spec file not found")
    return DatasetSpec.from_json_text(spec_file.read_text(), where=str(spec_file))


def prepare_dataset(config: "JobConfig") -> Dataset:
    """Generates the synthetic data set if configured and missing, then validates every split.

    Generation happens only at a plain local path (the default job's `data/synthetic/default`):
    a storage URI names data that exists, so a URI without spec.json is an error, never a new
    synthetic data set in a mistyped bucket path (`python -m ray_jobs.generate --out <uri>`
    writes one there on purpose).
    """
    from ray_jobs.data.synthetic import PRESETS, generate  # numpy-heavy; only when generating

    root = config.data.path
    if not location(root, "data.path").child(SPEC_FILE).exists():
        if config.data.generate is None:
            raise ConfigError(f"{root}: no data set here ({SPEC_FILE} missing) and data.generate is null")
        if is_uri(root):
            raise ConfigError(f"data.path {root!r}: no data set here ({SPEC_FILE} missing); synthetic data is "
                              f"generated only into a plain local path, never at a storage URI (a mistyped one "
                              f"would silently become synthetic data): check the URI, or write one there on "
                              f"purpose with `python -m ray_jobs.generate --out {root}`")
        if config.data.generate not in PRESETS:
            raise ConfigError(f"data.generate: unknown preset {config.data.generate!r}; presets: {sorted(PRESETS)}")
        logger.info("generating synthetic data set %r into %s", config.data.generate, root)
        generate(PRESETS[config.data.generate], root)
    spec = read_spec(root)
    return Dataset(root, spec, {s: validate_split(root, s, spec) for s in SPLITS})
