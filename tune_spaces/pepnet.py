"""PEPNet: Gate NU scale gamma, gate width, PPNet tower depth/widths, learning rates."""

from __future__ import annotations

from typing import Any

from ray import tune

from tune_spaces import common

ARCH = "pepnet"


def space() -> dict[str, Any]:
    """gamma bounds Gate NU's output to [0, gamma]; the paper's 2 sits in the middle."""
    return {
        **common.optim(),
        "model.params.gamma": tune.uniform(1.0, 3.0),
        "model.params.gate_hidden": tune.choice(common.GATE_HIDDEN),
        "model.params.tower": tune.choice([(100, 64), (128, 64, 32), (256, 128, 64, 32)]),
        "model.params.dropout": tune.choice([0.0, 0.1]),
    }
