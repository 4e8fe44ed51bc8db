"""SharedBottom: the shared bottom's depth and widths, task towers, learning rates.

The baseline every mechanism is measured against gets a search of its own, so that a gain is
the mechanism's and not a better-tuned model's.
"""

from __future__ import annotations

from typing import Any

from ray import tune

from tune_spaces import common

ARCH = "sharedbottom"


def space() -> dict[str, Any]:
    """The bottom takes the experts' menu: one shared MLP is one expert that every task uses."""
    return {
        **common.optim(),
        **common.towers(),
        "model.params.bottom": tune.choice(common.EXPERTS),
    }
