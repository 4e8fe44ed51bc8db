"""The preparation recipe: how one raw interaction log becomes a Seesaw data set.

A recipe is a YAML file parsed into these frozen dataclasses with unknown keys rejected, so
a typo fails at load time instead of silently dropping a feature. `ray_jobs.prepare` is the
only reader; `docs/data.md` documents every key with the KuaiRand recipe as the example.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Literal


from modules.spec import Role
from modules.strict import ConfigError, from_dict, read_yaml

Format = Literal["csv", "tsv", "parquet"]
DOMAIN_COLUMN = "domain"  # the output column holding the domain id
GROUP_COLUMN = "group_id"  # the output column holding GAUC groups (raw user ids)
ID_COLUMN = "sample_id"  # the output column holding each row's line number in the raw log


COMPRESSION = ("gz", "bz2", "zst", "lz4")  # suffixes pyarrow decompresses by itself
Scalar = str | int | float | bool


@dataclass(frozen=True, kw_only=True)
class Reader:
    """How to read raw files: the format and the CSV/TSV options (ignored for Parquet).

    format: csv, tsv or parquet; default the files' suffix (.csv, .tsv, .parquet, each maybe
    .gz/.bz2/.zst). header: the first line holds column names. names: column names, required
    when `header` is false (with a header they replace its names). sep: the delimiter (one
    character; default "," for csv, tab for tsv). na_values: extra strings read as missing, on
    top of pyarrow's defaults ("", "NA", "NaN", "null", "N/A", ...). strip: trim spaces around
    every string value (a "comma-plus-space" file), before `na_values` are matched.
    skip_rows: lines skipped before the header (or the first row). quote_char, encoding: as in
    pyarrow.csv. types: column -> "string" | "int64" | "float64" | "bool", forcing a column's type
    (e.g. zip codes with leading zeros); every other column's type is inferred.
    """

    format: Format | None = None
    header: bool = True
    names: tuple[str, ...] | None = None
    sep: str | None = None
    na_values: tuple[str, ...] = ()
    strip: bool = False
    skip_rows: int = 0
    quote_char: str = '"'
    encoding: str = "utf8"
    types: dict[str, Literal["string", "int64", "float64", "bool"]] | None = None

    def __post_init__(self) -> None:
        if not self.header and not self.names:
            raise ConfigError("header: false needs `names` (the column names)")
        if self.names is not None and len(set(self.names)) != len(self.names):
            raise ConfigError(f"names: a column name repeats in {list(self.names)}")
        if self.sep is not None and len(self.sep) != 1:
            raise ConfigError(f"sep: {self.sep!r} must be one character (for \", \" separated files "
                              "use sep: \",\" with strip: true)")
        if self.skip_rows < 0:
            raise ConfigError("skip_rows must be >= 0")

    def options(self) -> "Reader":
        """These reading options alone (a Source or Join without its path)."""
        return Reader(**{f.name: getattr(self, f.name) for f in fields(Reader)})


@dataclass(frozen=True, kw_only=True)
class Source(Reader):
    """Raw rows: one file, a directory (every csv/tsv/parquet file under it, sorted by path) or
    a glob (`logs/part-*.csv`), read with the `Reader` options. Files are read in sorted path
    order, which is the row order of the log (sample_id, error rows)."""

    path: str

    def resolve(self, raw_dir: Path | None, root: str | Path | None = None) -> Path:
        """`raw_dir` (the CLI's --raw-dir) holds every file by name; else the path as written,
        relative to `root` (the recipe file's folder) unless absolute. Never the source tree."""
        path = Path(self.path)
        if raw_dir is not None:
            return raw_dir / path.name
        return path if path.is_absolute() or root is None else Path(root) / path

    def files(self, raw_dir: Path | None, root: str | Path | None = None) -> tuple[Path, ...]:
        """The files this source names, sorted; a RawDataError when there are none."""
        from ray_jobs.core.errors import RawDataError

        path = self.resolve(raw_dir, root)
        if any(ch in self.path for ch in "*?["):
            base = Path(path.anchor) if path.is_absolute() else Path(".")
            found = sorted(p for p in base.glob(str(path.relative_to(base))) if p.is_file())
        elif path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_"))
                           and _suffix(p) in ("csv", "tsv", "parquet"))
        else:
            found = [path] if path.is_file() else []
        if not found:
            raise RawDataError(f"{path}: file not found" if not path.is_dir() else
                               f"{path}: directory holds no .csv, .tsv or .parquet files")
        return tuple(found)

    def file_format(self, path: Path | None = None) -> Format:
        if self.format is not None:
            return self.format
        suffix = _suffix(path or Path(self.path))
        if suffix not in ("csv", "tsv", "parquet"):
            raise ConfigError(f"{path or self.path}: cannot tell the format from the suffix; set `format`")
        return suffix  # type: ignore[return-value]


def _suffix(path: Path) -> str:
    """The format suffix of `path`, looking past a compression suffix (`a.csv.gz` -> csv)."""
    suffixes = [s.lower().lstrip(".") for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSION:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


@dataclass(frozen=True, kw_only=True)
class Log(Reader):
    """The interaction log: `path` (file, directory or glob) and the reading options; with
    `split.files` the path is left out and each split names its own."""

    path: str | None = None

    def source(self, path: str | None = None) -> Source:
        """The Source of `path` (default the log's own) read with these options."""
        return Source(path=path or self.path, **{f.name: getattr(self, f.name) for f in fields(Reader)})

    def resolve(self, raw_dir: Path | None, root: str | Path | None = None) -> Path:
        return self.source().resolve(raw_dir, root)


@dataclass(frozen=True, kw_only=True)
class Join(Source):
    """A side table left-joined on column `key`; every log key must be present, each exactly once."""

    key: str

    @property
    def source(self) -> Source:
        return Source(path=self.path, **{f.name: getattr(self, f.name) for f in fields(Reader)})


@dataclass(frozen=True)
class DaySplit:
    """Split by calendar day counted from the log's first day: train, then valid, then test."""

    column: str
    train_days: int
    valid_days: int = 1
    test_days: int = 1
    format: str = "%Y%m%d"

    def __post_init__(self) -> None:
        if min(self.train_days, self.valid_days, self.test_days) < 1:
            raise ConfigError("split: train_days, valid_days and test_days must be >= 1")


@dataclass(frozen=True)
class RandomSplit:
    """A seeded random split: each row (or, with `key`, each value of column `key`, so all rows
    of one user stay together) lands in test with probability `test`, valid with `valid`, else
    train. The draw is a hash (FNV-1a of the value's UTF-8 bytes, or of the row number, mixed
    with `seed` by splitmix64), so it is the same on every run and machine, and a keyed split
    does not change when the rows are reordered."""

    valid: float = 0.1
    test: float = 0.2
    seed: int = 0
    key: str | None = None

    def __post_init__(self) -> None:
        if not (0 < self.valid < 1 and 0 < self.test < 1 and self.valid + self.test < 1):
            raise ConfigError(f"split.random: valid ({self.valid}) and test ({self.test}) must be in (0, 1) "
                              "and sum to less than 1")


@dataclass(frozen=True)
class FileSplit:
    """Pre-split inputs: each split's own file, directory or glob, read with the `log` options."""

    train: str
    valid: str
    test: str


@dataclass(frozen=True)
class Split:
    """Exactly one of: the day split (column, train_days, valid_days, test_days, format at this
    level, as before), `random` (RandomSplit) or `files` (FileSplit)."""

    column: str | None = None
    train_days: int | None = None
    valid_days: int = 1
    test_days: int = 1
    format: str = "%Y%m%d"
    random: RandomSplit | None = None
    files: FileSplit | None = None

    def __post_init__(self) -> None:
        kinds = [k for k, set_ in (("day", self.column is not None or self.train_days is not None),
                                   ("random", self.random is not None), ("files", self.files is not None)) if set_]
        if len(kinds) != 1:
            raise ConfigError("split: set exactly one of {column, train_days} (by day), random or files; "
                              f"got {kinds or 'none'}")
        if kinds == ["day"]:
            if self.column is None or self.train_days is None:
                raise ConfigError("split: the day split needs both `column` and `train_days`")
            self.day  # validates the day counts

    @property
    def kind(self) -> Literal["day", "random", "files"]:
        return "random" if self.random is not None else "files" if self.files is not None else "day"

    @property
    def day(self) -> DaySplit:
        return DaySplit(self.column, self.train_days, self.valid_days, self.test_days, self.format)


@dataclass(frozen=True)
class Domain:
    """The raw column whose values are the domains. `map` renames raw values to domains
    (several values may share one; values the map does not name become "other"); then
    domains under `min_rows` training rows (and values unseen in training) become "other"."""

    column: str
    min_rows: int = 0
    map: dict[Scalar, str] | None = None

    def __post_init__(self) -> None:
        if self.map is not None:
            if not self.map:
                raise ConfigError("domain.map: empty; leave it out to use the raw values")
            bad = [v for v in self.map.values() if not v]
            if bad:
                raise ConfigError(f"domain.map: a domain name is empty: {self.map}")


@dataclass(frozen=True)
class Task:
    """A binary task read from column `column`; the task (and output column) is called `name`,
    default `column`. With neither rule the column must hold 0/1. `positive`: the raw values
    that mean 1 (compared as strings, so 1, 1.0 and "1" agree), every other value is 0, and
    each listed value must occur in the log (a typo fails instead of giving all zeros).
    `threshold`: 1 where the numeric value is >= threshold, else 0. A missing value is an error."""

    column: str
    name: str | None = None
    positive: tuple[Scalar, ...] | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.positive is not None and self.threshold is not None:
            raise ConfigError(f"task {self.output!r}: set at most one of positive, threshold")
        if self.positive is not None and not self.positive:
            raise ConfigError(f"task {self.output!r}: positive is an empty list")

    @property
    def output(self) -> str:
        return self.name or self.column


@dataclass(frozen=True)
class Buckets:
    """Turns a numeric column into bucket ids; exactly one rule is set.

    quantiles: that many equal-frequency buckets, boundaries fitted on the training split;
    width: floor(x / width) (e.g. hourmin 1730 -> hour 17 with width 100);
    log_base: sign(x) * floor(log_base(1 + |x|)), for heavy-tailed counts.
    """

    quantiles: int | None = None
    width: float | None = None
    log_base: float | None = None

    def __post_init__(self) -> None:
        rules = [r for r in (self.quantiles, self.width, self.log_base) if r is not None]
        if len(rules) != 1:
            raise ConfigError("buckets: set exactly one of quantiles, width, log_base")
        if self.quantiles is not None and self.quantiles < 2:
            raise ConfigError("buckets.quantiles must be >= 2")
        if self.width is not None and self.width <= 0:
            raise ConfigError("buckets.width must be > 0")
        if self.log_base is not None and self.log_base <= 1:
            raise ConfigError("buckets.log_base must be > 1")


@dataclass(frozen=True)
class SparseSpec:
    """A categorical (or bucketised numeric) column encoded into ids with a train-fitted vocab."""

    column: str
    role: Role = "context"
    name: str | None = None
    dim: int | None = None
    min_count: int | None = None
    buckets: Buckets | None = None
    task_specific: bool = True

    @property
    def output(self) -> str:
        return self.name or self.column


@dataclass(frozen=True)
class DenseSpec:
    """A numeric column kept dense: optional signed log1p, then standardised with train stats."""

    column: str
    name: str | None = None
    log1p: bool = True

    @property
    def output(self) -> str:
        return self.name or self.column


@dataclass(frozen=True)
class Recipe:
    """Everything `python -m ray_jobs.prepare` needs to turn raw files into a data set."""

    log: Log
    split: Split
    domain: Domain
    tasks: tuple[Task, ...]
    sparse: tuple[SparseSpec, ...]
    joins: tuple[Join, ...] = ()
    dense: tuple[DenseSpec, ...] = ()
    group: str | None = "user_id"
    embedding_dim: int = 16
    min_count: int = 10
    root: str | None = None  # folder that relative raw paths resolve against; load_recipe: the recipe's folder

    def __post_init__(self) -> None:
        outputs = [f.output for f in self.sparse] + [f.output for f in self.dense]
        outputs += [t.output for t in self.tasks]
        for name in outputs:
            if not name.isidentifier():
                raise ConfigError(f"recipe: output name {name!r} must be an identifier")
        dupes = sorted({n for n in outputs if outputs.count(n) > 1})
        if dupes:
            raise ConfigError(f"recipe: output name(s) used twice: {dupes}")
        clash = sorted(set(outputs) & {DOMAIN_COLUMN, GROUP_COLUMN})
        if clash:
            raise ConfigError(f"recipe: {clash} is reserved for the domain id column")
        if self.group is not None and self.group not in [f.output for f in self.sparse]:
            raise ConfigError(f"recipe: group {self.group!r} must name a sparse feature (or group: null: no GAUC)")
        if self.split.kind == "files" and self.log.path is not None:
            raise ConfigError("recipe: split.files names the inputs; leave log.path out (log keeps the reading options)")
        if self.split.kind != "files" and self.log.path is None:
            raise ConfigError("recipe: log.path is required (unless split.files names the inputs)")
        if self.min_count < 1 or self.embedding_dim < 1:
            raise ConfigError("recipe: min_count and embedding_dim must be >= 1")

    def min_count_of(self, feature: SparseSpec) -> int:
        return self.min_count if feature.min_count is None else feature.min_count

    def dim_of(self, feature: SparseSpec) -> int:
        return self.embedding_dim if feature.dim is None else feature.dim


def load_recipe(path: str | Path) -> Recipe:
    """Parses a recipe YAML file (safe_load), naming the file in every error."""
    path = Path(path)
    recipe = from_dict(Recipe, read_yaml(path, "recipe"), where=str(path))
    return recipe if recipe.root is not None else replace(recipe, root=str(path.resolve().parent))
