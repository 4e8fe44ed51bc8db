"""The data contract: which features, tasks and domains a data set has.

A data set is a directory of Parquet files plus `spec.json` (this module's `DatasetSpec`).
Column layout of every Parquet file:
- one column per sparse feature: int64 ids in [0, cardinality); list<int64> when multi-hot;
- one float column per dense feature;
- one column per task (named as the task), labels in {0, 1};
- `domain_column`: int ids in [0, len(domains));
- optionally `prob_<task>`: the true positive probability (synthetic data; gives the oracle AUC);
- optionally `id_column`: a unique int64 id per row, carried into the test predictions so that
  analyses can join two models' predictions row by row (shard order differs between runs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from modules.strict import ConfigError, from_dict, to_dict

Role = Literal["user", "item", "author", "context", "domain"]
ROLES: tuple[str, ...] = ("user", "item", "author", "context", "domain")
SPEC_FILE = "spec.json"
PROBABILITY_PREFIX = "prob_"
TERM_PREFIX = "term_"  # term_<mechanism>_<task>: a synthetic logit term, stored per sample (seesaw presets)
LOGIT_PREFIX = "logit_"  # logit_<task>: the true logit beside its terms (float32 probabilities saturate at 1)


@dataclass(frozen=True)
class SparseFeature:
    """One categorical feature and the embedding table it owns.

    `role` tells the personalised architectures where it belongs: PEPNet's EPNet gate reads
    `domain` features, PPNet's prior reads `user`/`item`/`author` features. `task_specific`
    marks the features that STEM-Net gives one table per task.
    """

    name: str
    cardinality: int
    embedding_dim: int
    role: Role = "context"
    multi_hot: bool = False
    pooling: Literal["sum", "mean"] = "sum"
    task_specific: bool = True

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ConfigError(f"sparse feature name {self.name!r} must be an identifier")
        if self.cardinality < 1:
            raise ConfigError(f"sparse feature {self.name!r}: cardinality must be >= 1")
        if self.embedding_dim < 1:
            raise ConfigError(f"sparse feature {self.name!r}: embedding_dim must be >= 1")


@dataclass(frozen=True)
class DatasetSpec:
    """Features, tasks and domains of one data set (the contents of `spec.json`)."""

    sparse_features: tuple[SparseFeature, ...]
    dense_features: tuple[str, ...]
    tasks: tuple[str, ...]
    domains: tuple[str, ...]
    domain_column: str = "domain"
    group_column: str | None = "user_id"  # None: no GAUC groups (metrics report GAUC as absent)
    id_column: str | None = None

    def __post_init__(self) -> None:
        names = [f.name for f in self.sparse_features]
        columns = names + list(self.dense_features) + list(self.tasks)
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        if dupes:
            raise ConfigError(f"spec: column name(s) used twice: {dupes}")
        if not self.sparse_features:
            raise ConfigError("spec: at least one sparse feature is required")
        if not self.tasks:
            raise ConfigError("spec: at least one task is required")
        if not self.domains:
            raise ConfigError("spec: at least one domain is required")
        if len(set(self.domains)) != len(self.domains):
            raise ConfigError(f"spec: duplicate domain names in {list(self.domains)}")
        if self.domain_column in self.tasks or self.domain_column in self.dense_features:
            raise ConfigError(f"spec: domain_column {self.domain_column!r} clashes with a task/dense column")

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    @property
    def num_domains(self) -> int:
        return len(self.domains)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.sparse_features)

    def feature(self, name: str) -> SparseFeature:
        for f in self.sparse_features:
            if f.name == name:
                return f
        raise KeyError(f"spec has no sparse feature {name!r}; it has {list(self.feature_names)}")

    def features_with_role(self, *roles: str) -> tuple[SparseFeature, ...]:
        for role in roles:
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r}; roles are {ROLES}")
        return tuple(f for f in self.sparse_features if f.role in roles)

    def required_columns(self) -> tuple[str, ...]:
        """Every column a Parquet file of this data set must have."""
        cols = list(self.feature_names) + list(self.dense_features) + list(self.tasks)
        if self.domain_column not in cols:
            cols.append(self.domain_column)
        if self.group_column is not None and self.group_column not in cols:
            cols.append(self.group_column)
        if self.id_column is not None and self.id_column not in cols:
            cols.append(self.id_column)
        return tuple(cols)

    def to_json(self) -> str:
        return json.dumps(to_dict(self), indent=2) + "\n"

    @classmethod
    def from_json_dict(cls, data: dict, where: str = "spec") -> "DatasetSpec":
        return from_dict(cls, data, where)

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / SPEC_FILE
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "DatasetSpec":
        """Loads `spec.json` from a file or from the data set directory holding it."""
        path = Path(path)
        if path.is_dir():
            path = path / SPEC_FILE
        if not path.exists():
            raise ConfigError(f"{path}: spec file not found")
        return cls.from_json_text(path.read_text(), where=str(path))

    @classmethod
    def from_json_text(cls, text: str, where: str) -> "DatasetSpec":
        """Parses spec.json's text (read from any storage); errors name `where`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not valid JSON: {exc}") from exc
        return cls.from_json_dict(data, where=where)
