"""The preparation recipe: how one raw interaction log becomes a Seesaw data set.

A recipe is a YAML file parsed into these frozen dataclasses with unknown keys rejected, so
a typo fails at load time instead of silently dropping a feature. `ray_jobs.prepare` is the
only reader; `docs/data.md` documents every key with the KuaiRand recipe as the example.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import yaml

from modules.spec import Role
from modules.strict import ConfigError, from_dict

Format = Literal["csv", "tsv", "parquet"]
DOMAIN_COLUMN = "domain"  # the output column holding the domain id
GROUP_COLUMN = "group_id"  # the output column holding GAUC groups (raw user ids)
ID_COLUMN = "sample_id"  # the output column holding each row's line number in the raw log


@dataclass(frozen=True)
class Source:
    """One raw file. `format` defaults to the file suffix (.csv, .tsv, .parquet)."""

    path: str
    format: Format | None = None

    def file_format(self) -> Format:
        if self.format is not None:
            return self.format
        suffix = Path(self.path).suffix.lower().lstrip(".")
        if suffix not in ("csv", "tsv", "parquet"):
            raise ConfigError(f"{self.path}: cannot tell the format from the suffix; set `format`")
        return suffix  # type: ignore[return-value]

    def resolve(self, raw_dir: Path | None, root: str | Path | None = None) -> Path:
        """`raw_dir` (the CLI's --raw-dir) holds every file by name; else the path as written,
        relative to `root` (the recipe file's folder) unless absolute. Never the source tree."""
        path = Path(self.path)
        if raw_dir is not None:
            return raw_dir / path.name
        return path if path.is_absolute() or root is None else Path(root) / path


@dataclass(frozen=True)
class Join:
    """A side table left-joined on column `key`; every log key must be present, each exactly once."""

    path: str
    key: str
    format: Format | None = None

    @property
    def source(self) -> Source:
        return Source(self.path, self.format)


@dataclass(frozen=True)
class Split:
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
class Domain:
    """The raw column whose values are the domains; segments under `min_rows` training rows
    (and values unseen in training) become the domain "other"."""

    column: str
    min_rows: int = 0


@dataclass(frozen=True)
class Task:
    """A binary label column; the task (and output column) is called `name`, default `column`."""

    column: str
    name: str | None = None

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

    log: Source
    split: Split
    domain: Domain
    tasks: tuple[Task, ...]
    sparse: tuple[SparseSpec, ...]
    joins: tuple[Join, ...] = ()
    dense: tuple[DenseSpec, ...] = ()
    group: str = "user_id"
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
        if self.group not in [f.output for f in self.sparse]:
            raise ConfigError(f"recipe: group {self.group!r} must name a sparse feature")
        if self.min_count < 1 or self.embedding_dim < 1:
            raise ConfigError("recipe: min_count and embedding_dim must be >= 1")

    def min_count_of(self, feature: SparseSpec) -> int:
        return self.min_count if feature.min_count is None else feature.min_count

    def dim_of(self, feature: SparseSpec) -> int:
        return self.embedding_dim if feature.dim is None else feature.dim


def load_recipe(path: str | Path) -> Recipe:
    """Parses a recipe YAML file (safe_load), naming the file in every error."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: recipe not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    recipe = from_dict(Recipe, data, where=str(path))
    return recipe if recipe.root is not None else replace(recipe, root=str(path.resolve().parent))
