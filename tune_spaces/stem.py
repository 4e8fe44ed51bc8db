"""STEM-Net: shared / task-specific expert counts, expert and gate widths, towers, learning rates."""

from __future__ import annotations

from typing import Any

from ray import tune

from tune_spaces import common

ARCH = "stem"


def space() -> dict[str, Any]:
    """num_shared_experts may be 0 (specific experts only); STEM needs >= 1 specific expert."""
    return {
        **common.optim(),
        **common.towers(),
        "model.params.num_shared_experts": tune.choice([0, 1, 2, 4]),
        "model.params.num_specific_experts": tune.choice([1, 2]),
        "model.params.expert_hidden": tune.choice(common.EXPERTS),
        "model.params.gate": tune.choice([(h,) for h in common.GATE_HIDDEN]),
    }
