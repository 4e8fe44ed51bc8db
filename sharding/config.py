"""The sharding layer's knobs as plain dataclasses, importable without torch or TorchRec.

A job config (`ray_jobs.core.config`) holds them, and it is parsed in processes that never
build a model: the driver, Ray Train's controller and dataset manager, Ray Data's actors.
Importing TorchRec and FBGEMM costs about 2-3 s of CPU per process on the 2-core machine.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlannerConfig:
    """Knobs of the sharding plan.

    Attributes:
        row_wise_min_rows: on CUDA, tables with at least this many rows are row-wise only.
        sharding_types: override of the allowed types for every table (None: by device).
    """

    row_wise_min_rows: int = 1_000_000
    sharding_types: tuple[str, ...] | None = None


@dataclass(frozen=True)
class OptimConfig:
    """Learning rates of the two optimizers (`sharding.optim`): row-wise Adagrad fused into the
    embedding backward (sparse), Adam over every other parameter (dense)."""

    sparse_lr: float = 0.05
    sparse_eps: float = 1e-8
    dense_lr: float = 1e-3
    dense_weight_decay: float = 0.0
    dense_fused: bool = True  # Adam's fused kernel (one pass over each parameter instead of ~10)
