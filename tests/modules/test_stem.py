"""STEM-Net, ME-PLE, ME-MMoE: table sets and gradient isolation checked with autograd."""

from __future__ import annotations

import pytest
import torch

from modules.dense.base import SHARED_SET, embedding_key
from modules.dense.registry import arch_class, build_arch, parse_arch_config
from modules.dense.stem import specific_features
from modules.spec import DatasetSpec, SparseFeature
from modules.strict import ConfigError

B = 16
SPEC = DatasetSpec(
    sparse_features=(
        SparseFeature("user_id", 50, 4, role="user"),
        SparseFeature("user_age", 9, 3, role="user"),
        SparseFeature("item_id", 50, 4, role="item"),
        SparseFeature("author_id", 20, 2, role="author", task_specific=False),
        SparseFeature("domain", 3, 2, role="domain", task_specific=False),
    ),
    dense_features=("d0", "d1"),
    tasks=("click", "like", "share"),
    domains=("a", "b", "c"),
)
SMALL = {"expert_hidden": [16, 8], "gate": [8], "tower": [8]}


def build(name: str, **params):
    torch.manual_seed(0)
    params = {**SMALL, **params}
    arch = build_arch(name, SPEC, params)
    sets = arch_class(name).table_sets(SPEC, parse_arch_config(name, params))
    return arch, sets


def embeddings(sets) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {
        key: torch.randn(B, SPEC.feature(f).embedding_dim, generator=g, requires_grad=True)
        for s in sets for f, key in zip(s.features, s.keys())
    }


def grads(loss: torch.Tensor, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, tensors, retain_graph=True, allow_unused=True, materialize_grads=True))


def set_keys(sets, name: str) -> list[str]:
    return [k for s in sets if s.name == name for k in s.keys()]


def test_specific_feature_modes_and_table_sets() -> None:
    assert specific_features(SPEC, "all") == ("user_id", "user_age", "item_id")
    assert specific_features(SPEC, "user") == ("user_id", "user_age")
    assert specific_features(SPEC, "user_item_id") == ("user_id", "item_id")
    _, sets = build("stem")
    assert [s.name for s in sets] == [SHARED_SET, "click", "like", "share"]  # T + 1 sets
    assert sets[0].features == SPEC.feature_names and sets[1].features == ("user_id", "user_age", "item_id")
    _, sets = build("stem", task_specific_features="user_item_id")
    assert sets[2].keys() == (embedding_key("user_id", "like"), embedding_key("item_id", "like"))
    _, sets = build("me_mmoe", num_experts=3)
    assert [s.name for s in sets] == [SHARED_SET, "expert0", "expert1", "expert2"]
    no_item = DatasetSpec(SPEC.sparse_features[:2], (), ("click",), ("a",))
    with pytest.raises(ConfigError):
        specific_features(no_item, "user_item_id")


@pytest.mark.parametrize("name", ["stem", "me_ple"])
def test_task_loss_never_trains_other_tasks(name: str) -> None:
    arch, sets = build(name, num_shared_experts=2, num_specific_experts=2)
    emb = embeddings(sets)
    dense = torch.randn(B, 2)
    logits = arch(emb, dense, torch.zeros(B, dtype=torch.long)).logits
    assert logits.shape == (B, 3)
    weight, bias = arch.experts.weights[0], arch.experts.biases[-1]
    n_shared, n_spec = 2, 2
    for i, task in enumerate(SPEC.tasks):
        shared_keys = set_keys(sets, SHARED_SET)
        keys = {name_: set_keys(sets, name_) for name_ in SPEC.tasks}
        tensors = [emb[k] for k in shared_keys] + [emb[k] for t in SPEC.tasks for k in keys[t]] + [weight, bias]
        g = dict(zip(shared_keys + [k for t in SPEC.tasks for k in keys[t]] + ["W", "b"],
                     grads(logits[:, i].sum(), tensors)))
        assert all(g[k].abs().sum() > 0 for k in shared_keys)
        assert all(g[k].abs().sum() > 0 for k in keys[task])
        for j, other in enumerate(SPEC.tasks):
            experts = slice(n_shared + j * n_spec, n_shared + (j + 1) * n_spec)
            if j == i:
                assert g["W"][experts].abs().sum() > 0 and g["b"][experts].abs().sum() > 0
            else:
                assert all(torch.equal(g[k], torch.zeros_like(g[k])) for k in keys[other])
                assert torch.equal(g["W"][experts], torch.zeros_like(g["W"][experts]))
                assert torch.equal(g["b"][experts], torch.zeros_like(g["b"][experts]))
        assert g["W"][:n_shared].abs().sum() > 0


@pytest.mark.parametrize("name,all_forward", [("stem", True), ("me_ple", False)])
def test_forward_sees_other_tasks_only_in_stem(name: str, all_forward: bool) -> None:
    arch, sets = build(name)
    emb = embeddings(sets)
    dense, domain = torch.randn(B, 2), torch.zeros(B, dtype=torch.long)
    base = arch(emb, dense, domain).logits
    perturbed = dict(emb)
    for k in set_keys(sets, "like"):  # task 1's own tables
        perturbed[k] = emb[k] + 1.0
    moved = arch(perturbed, dense, domain).logits
    assert not torch.allclose(moved[:, 1], base[:, 1])
    for i in (0, 2):
        assert torch.equal(moved[:, i], base[:, i]) != all_forward  # ME-PLE: exactly unchanged


def test_me_mmoe_is_all_backward() -> None:
    arch, sets = build("me_mmoe", num_experts=3)
    emb = embeddings(sets)
    logits = arch(emb, torch.randn(B, 2), torch.zeros(B, dtype=torch.long)).logits
    for i in range(3):
        loss = logits[:, i].sum()
        for e in range(3):
            g = grads(loss, [emb[k] for k in set_keys(sets, f"expert{e}")] + [arch.experts.weights[0]])
            assert all(x.abs().sum() > 0 for x in g[:-1])
            assert g[-1][e].abs().sum() > 0
