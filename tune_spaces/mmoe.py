"""MMoE: expert count and widths, task towers, learning rates."""

from __future__ import annotations

from typing import Any

from ray import tune

from tune_spaces import common

ARCH = "mmoe"


def space() -> dict[str, Any]:
    return {
        **common.optim(),
        **common.towers(),
        "model.params.num_experts": tune.choice([2, 4, 8]),
        "model.params.expert_hidden": tune.choice(common.EXPERTS),
    }
