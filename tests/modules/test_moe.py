"""OMoE / MMoE / PLE: shapes and gradients, mixtures against hand-written math, PLE routing."""

from __future__ import annotations

import pytest
import torch

from modules.dense import build_arch
from modules.dense.experts import mix
from modules.dense.moe import PLE, PLELevel
from modules.dense.pepnet import PPNetTowers
from tests.modules.test_pepnet import B, assert_trains, make_inputs, make_spec

SMALL = {"expert_hidden": [6, 5], "tower": [4]}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("name,params", [
    ("omoe", {"num_experts": 3}),
    ("mmoe", {"num_experts": 3}),
    ("mmoe", {"num_experts": 3, "ppnet": True, "ppnet_gate_hidden": 8}),
    ("ple", {"num_levels": 2, "num_shared_experts": 2, "num_specific_experts": 1}),
    ("ple", {"num_levels": 1, "ppnet": True, "dropout": 0.1}),
])
def test_forward_backward_reaches_every_parameter(name: str, params: dict) -> None:
    assert_trains(build_arch(name, make_spec(), {**SMALL, **params}))


@pytest.mark.parametrize("name", ["omoe", "mmoe"])
def test_gated_mixture_matches_hand_computed_softmax_mixture(name: str) -> None:
    spec = make_spec()
    arch = build_arch(name, spec, {**SMALL, "num_experts": 3})
    embeddings, dense, domain = make_inputs(arch)
    x = torch.cat([embeddings[f] for f in spec.feature_names] + [dense], dim=-1)
    experts = torch.stack(arch.experts.forward_groups([x] * 3), dim=1)  # [B, E, D]
    gates = arch.gates(x).view(B, -1, 3)
    assert gates.shape[1] == (1 if name == "omoe" else spec.num_tasks)
    logits = []
    for t, tower in enumerate(arch.towers):
        w = torch.exp(gates[:, t % gates.shape[1]])
        w = w / w.sum(-1, keepdim=True)
        logits.append(tower((w.unsqueeze(-1) * experts).sum(1)))
    torch.testing.assert_close(arch(embeddings, dense, domain).logits, torch.cat(logits, dim=-1))


def test_mmoe_ppnet_replaces_towers_with_ppnet_over_each_task_mixture() -> None:
    spec = make_spec()
    assert not isinstance(build_arch("mmoe", spec, SMALL).towers, PPNetTowers)
    arch = build_arch("mmoe", spec, {**SMALL, "ppnet": True})
    assert isinstance(arch.towers, PPNetTowers)
    embeddings, dense, domain = make_inputs(arch)
    x = torch.cat([embeddings[f] for f in spec.feature_names] + [dense], dim=-1)
    experts = arch.experts.forward_all(x)
    gates = arch.gates(x).view(B, spec.num_tasks, -1)
    prior = torch.cat([embeddings[f] for f in ("uid", "iid", "aid")], dim=-1)
    expected = [tower(mix(experts, gates[:, t]), prior) for t, tower in enumerate(arch.towers.towers)]
    torch.testing.assert_close(arch(embeddings, dense, domain).logits, torch.cat(expected, dim=-1))


def test_ple_level_routes_each_expert_to_its_owner_input() -> None:
    level = PLELevel(in_dim=4, num_tasks=2, num_shared=2, num_specific=1, hidden=(5,), shared_gate=True)
    inputs = torch.randn(3, B, 4)  # shared, task 0, task 1
    tasks, shared = level(inputs)
    owner = [0, 0, 1, 2]  # 2 shared experts, then task 0's, then task 1's
    outs = level.experts.forward_groups([inputs[o] for o in owner])

    def mixture(experts: list[int], gate_logits: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(gate_logits, dim=-1)
        return sum(w[:, i:i + 1] * outs[e] for i, e in enumerate(experts))

    torch.testing.assert_close(tasks[0], mixture([0, 1, 2], level.task_gates[0](inputs[1])))
    torch.testing.assert_close(tasks[1], mixture([0, 1, 3], level.task_gates[1](inputs[2])))
    torch.testing.assert_close(shared, mixture([0, 1, 2, 3], level.shared_gate(inputs[0])))


def test_ple_final_level_keeps_task_specific_experts_private() -> None:
    spec = make_spec(("click", "like"))
    arch = build_arch("ple", spec, {**SMALL, "num_levels": 2, "num_shared_experts": 2, "num_specific_experts": 2})
    assert isinstance(arch, PLE) and len(arch.levels) == 2
    first, last = arch.levels
    assert first.shared_gate is not None and last.shared_gate is None
    embeddings, dense, domain = make_inputs(arch)
    logits = arch(embeddings, dense, domain).logits
    for task, other in ((0, 1), (1, 0)):
        params = [first.experts.weights[0], last.experts.weights[0], *last.task_gates[other].parameters()]
        g_first, g_last, *g_gate = torch.autograd.grad(logits[:, task].sum(), params, retain_graph=True,
                                                       allow_unused=True, materialize_grads=True)
        mine = slice(2 + 2 * task, 4 + 2 * task)
        theirs = slice(2 + 2 * other, 4 + 2 * other)
        assert g_last[theirs].abs().sum() == 0 and all(g.abs().sum() == 0 for g in g_gate)
        assert g_last[:2].abs().sum() > 0 and g_last[mine].abs().sum() > 0
        # At the first level the shared gate mixes every expert, so the other task's experts matter.
        assert g_first[theirs].abs().sum() > 0
