"""PLE: extraction levels, shared and task-specific expert counts, widths, towers, learning rates."""

from __future__ import annotations

from typing import Any

from ray import tune

from tune_spaces import common

ARCH = "ple"


def space() -> dict[str, Any]:
    return {
        **common.optim(),
        **common.towers(),
        "model.params.num_levels": tune.choice([1, 2, 3]),
        "model.params.num_shared_experts": tune.choice([1, 2, 4]),
        "model.params.num_specific_experts": tune.choice([1, 2]),
        "model.params.expert_hidden": tune.choice(common.EXPERTS),
    }
