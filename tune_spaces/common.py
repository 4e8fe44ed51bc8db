"""Choices every model family shares, so one family's search is comparable with another's.

Widths are CPU-sized menus (the synthetic and KuaiRand sets fit them); tuples are sampled
whole, so depth and widths move together instead of producing odd funnels.
"""

from __future__ import annotations

from typing import Any

from ray import tune

# Task tower depth and widths, narrowing towards the logit.
TOWERS: list[tuple[int, ...]] = [(64,), (128, 64), (256, 128, 64)]
# Expert MLP depth and widths.
EXPERTS: list[tuple[int, ...]] = [(64,), (128, 64), (256, 128)]
# Hidden width of gating MLPs (Gate NU, expert gates).
GATE_HIDDEN: list[int] = [32, 64, 128]


def optim() -> dict[str, Any]:
    """Dense Adam and fused sparse Adagrad learning rates, log-scaled around the defaults."""
    return {
        "train.optim.dense_lr": tune.loguniform(1e-4, 1e-2),
        "train.optim.sparse_lr": tune.loguniform(5e-3, 2e-1),
    }


def towers() -> dict[str, Any]:
    """Task towers and dropout: the same menu for every family with `tower` and `dropout` params."""
    return {
        "model.params.tower": tune.choice(TOWERS),
        "model.params.dropout": tune.choice([0.0, 0.1]),
    }
