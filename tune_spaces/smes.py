"""SMES: expert count E, shared / adaptive experts per task, load-balance weight beta.

The menus are compatible by construction: K_s >= 1 keeps K_s + K_a >= 1, and the largest
K_s + K_a (4 + 2) stays below the smallest E (8), so every sample is a valid SMESConfig.
"""

from __future__ import annotations

from typing import Any

from ray import tune

from tune_spaces import common

ARCH = "smes"


def space() -> dict[str, Any]:
    return {
        **common.optim(),
        **common.towers(),
        "model.params.num_experts": tune.choice([8, 16, 32]),
        "model.params.k_shared": tune.choice([1, 2, 4]),
        "model.params.k_adaptive": tune.choice([0, 1, 2]),
        "model.params.expert_hidden": tune.choice(common.EXPERTS),
        "model.params.beta": tune.loguniform(1e-3, 1e-1),
    }
