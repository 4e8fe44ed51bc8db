"""What a bounded raw-id feature is configured with (`BoundedFeature`), importable without torch.

A job config (`ray_jobs.core.config`) holds these, and it is parsed in processes that never
build a model (the driver, Ray Train's controller, Ray Data's actors), where importing
TorchRec would cost seconds of CPU. The tables themselves are `modules.collision`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from modules.strict import ConfigError

Policy = Literal["lfu", "lru", "feature_score"]
POLICIES: tuple[str, ...] = ("lfu", "lru", "feature_score")
RAW_ID_MAX = 2**63 - 2  # MCH marks empty slots with int64 max (2**63 - 1): raw ids stay below it


@dataclass(frozen=True)
class BoundedFeature:
    """The row cap and policies of one KJT key whose raw ids are unbounded.

    Attributes:
        key: the KJT key (one embedding table) whose raw int64 ids are remapped. In a job
            config it names the data column; `for_keys` gives every table reading it its own copy.
        rows: table size; rows - 1 ids own a row, row rows - 1 is the shared default row.
        policy: eviction policy, see `modules.collision`.
        admission_threshold: occurrences before an id may own a row (1: admit at once).
        eviction_interval: batches between merges of the seen ids into the table.
        decay_exponent: recency exponent of "lru" and "feature_score".
        max_ids_per_batch: most ids of this key in one (global) batch; sizes TorchRec's
            history buffer, which silently drops ids beyond it, so larger batches are refused.
        probation_rows: candidates the admission counter tracks (0: 4 * rows).
    """

    key: str
    rows: int
    policy: Policy = "feature_score"
    admission_threshold: int = 1
    eviction_interval: int = 1
    decay_exponent: float = 1.0
    max_ids_per_batch: int = 65536
    probation_rows: int = 0

    def __post_init__(self) -> None:
        if self.rows < 2:
            raise ConfigError(f"bounded feature {self.key!r}: rows must be >= 2 (one is the default row)")
        if self.policy not in POLICIES:
            raise ConfigError(f"bounded feature {self.key!r}: policy {self.policy!r} is not one of {POLICIES}")
        if self.admission_threshold < 1:
            raise ConfigError(f"bounded feature {self.key!r}: admission_threshold must be >= 1")
        if self.eviction_interval < 1:
            raise ConfigError(f"bounded feature {self.key!r}: eviction_interval must be >= 1")
        if self.max_ids_per_batch < 1:
            raise ConfigError(f"bounded feature {self.key!r}: max_ids_per_batch must be >= 1")
        if self.probation_rows < 0 or self.probation_rows == 1:
            raise ConfigError(f"bounded feature {self.key!r}: probation_rows must be 0 or >= 2")

    @property
    def default_row(self) -> int:
        return self.rows - 1

    @property
    def probation_size(self) -> int:
        return self.probation_rows or 4 * self.rows
