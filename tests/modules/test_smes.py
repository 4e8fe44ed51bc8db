"""SMES: routing invariants, the load-balance loss, and grouped execution vs the masked reference."""

from __future__ import annotations

import pytest
import torch

from modules.dense.registry import build_arch
from modules.dense.smes import SMES, load_balance, route
from modules.spec import DatasetSpec, SparseFeature
from modules.strict import ConfigError

B = 64
SPEC = DatasetSpec(
    sparse_features=(
        SparseFeature("user_id", 50, 4, role="user"),
        SparseFeature("item_id", 50, 4, role="item"),
        SparseFeature("domain", 3, 4, role="domain"),
    ),
    dense_features=("d0", "d1"),
    tasks=("click", "like", "share"),
    domains=("a", "b", "c"),
)


def inputs(requires_grad: bool = False) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    emb = {f.name: torch.randn(B, f.embedding_dim, generator=g, requires_grad=requires_grad) for f in SPEC.sparse_features}
    dense = torch.randn(B, 2, generator=g, requires_grad=requires_grad)
    return emb, dense, torch.randint(0, 3, (B,), generator=g)


def smes(**params) -> SMES:
    torch.manual_seed(0)
    base = {"num_experts": 8, "expert_hidden": [16, 8], "tower": [8]}
    return build_arch("smes", SPEC, {**base, **params})


@pytest.mark.parametrize("k_shared,k_adaptive", [(2, 1), (0, 2), (3, 0), (1, 2)])
def test_routing_invariants(k_shared: int, k_adaptive: int) -> None:
    T, E = 3, 8
    logits = torch.randn(B, T, E, generator=torch.Generator().manual_seed(2))
    r = route(logits, torch.full((T,), 1.0 / T), k_shared, k_adaptive)
    assert (r.mask.sum(-1) == k_shared + k_adaptive).all()  # |K_t| exact, no duplicates
    assert (r.selected[:, :, :k_shared] == r.shared.unsqueeze(1)).all()  # S common to all tasks
    shared_mask = torch.zeros(B, E, dtype=torch.bool).scatter_(1, r.shared, True)
    adaptive = r.selected[:, :, k_shared:]
    assert not shared_mask.gather(1, adaptive.reshape(B, -1)).any()  # A_t disjoint from S
    # S is the top-K_s of the task-averaged probabilities, A_t the top-K_a of z_t outside S
    s = r.probs.mean(1)
    if k_shared:
        assert (s.gather(1, r.shared).min(1).values >= s.masked_fill(shared_mask, -1).max(1).values).all()
    z_out = logits.masked_fill(shared_mask.unsqueeze(1), float("-inf"))
    if k_adaptive:
        kth = z_out.topk(k_adaptive, -1).values[..., -1:]
        assert (logits.gather(2, adaptive) >= kth).all()
    union = r.union.sum(1)
    assert (union >= k_shared + k_adaptive).all() and (union <= k_shared + T * k_adaptive).all()


def test_weights_renormalise_over_selected() -> None:
    logits = torch.randn(B, 3, 8)
    r = route(logits, torch.full((3,), 1 / 3), 2, 1)
    w = r.mixture_weights(logits)
    expected = r.probs * r.mask / (r.probs * r.mask).sum(-1, keepdim=True)
    torch.testing.assert_close(w, expected)


def test_load_balance_uniform_and_skew() -> None:
    E, K = 8, 3
    assert load_balance(torch.full((E,), K / E), torch.full((E,), 1 / E), K).item() == pytest.approx(1.0)
    skewed_f = torch.tensor([1.0, 1.0, 1.0, 0, 0, 0, 0, 0])  # always the same K experts
    previous = 1.0
    for alpha in (0.2, 0.5, 0.9):  # probability mass moving onto those experts
        p = torch.full((E,), (1 - alpha) / E)
        p[:K] += alpha / K
        value = load_balance(skewed_f, p, K).item()
        assert value > previous
        previous = value
    assert load_balance(skewed_f, torch.tensor([1 / K] * K + [0.0] * (E - K)), K).item() == pytest.approx(E / K)


def test_aux_loss_is_one_at_uniform_routing_and_reaches_routers() -> None:
    emb, dense, domain = inputs()
    model = smes(beta=0.5)
    with torch.no_grad():
        model.router.weight.zero_()
    out = model(emb, dense, domain)
    assert out.aux_loss.item() == pytest.approx(0.5)
    model = smes(beta=0.5)
    out = model(emb, dense, domain)
    assert out.aux_loss.item() > 0.5  # random routers are skewed, and top-K follows p
    (grad,) = torch.autograd.grad(out.aux_loss, model.router.weight)
    assert grad.abs().sum() > 0


def test_telemetry_and_ablations() -> None:
    emb, dense, domain = inputs()
    out = smes()(emb, dense, domain)
    assert out.logits.shape == (B, 3)
    load = out.telemetry["expert_load"]
    assert load.shape == (8,) and load.sum().item() == pytest.approx(1.0)
    assert 3 <= out.telemetry["mean_union"].item() <= 2 + 3 * 1
    assert smes(beta=0.0)(emb, dense, domain).aux_loss is None
    assert smes(k_shared=0, k_adaptive=2)(emb, dense, domain).telemetry["mean_union"].item() >= 2
    no_adaptive = smes(k_shared=2, k_adaptive=0)(emb, dense, domain)
    assert no_adaptive.telemetry["mean_union"].item() == pytest.approx(2.0)  # all tasks share S
    with pytest.raises(ConfigError):
        smes(k_shared=6, k_adaptive=3)
    with pytest.raises(ConfigError):
        smes(task_weights=[1.0])


def test_grouped_matches_masked_reference_outputs_and_gradients() -> None:
    model = smes(encoder=[12], num_experts=16, k_shared=2, k_adaptive=2)
    emb, dense, domain = inputs(requires_grad=True)
    names = [n for n, _ in model.named_parameters()]
    leaves = [*model.parameters(), *emb.values(), dense]
    results = []
    for run in (model.forward, model.reference_forward):
        out = run(emb, dense, domain)
        loss = (out.logits * torch.linspace(-1, 1, 3)).sum() + out.aux_loss
        results.append((out.logits, torch.autograd.grad(loss, leaves, allow_unused=True, materialize_grads=True)))
    (fast, fast_grads), (ref, ref_grads) = results
    torch.testing.assert_close(fast, ref)
    for a, b in zip(fast_grads, ref_grads):
        torch.testing.assert_close(a, b)
    assert fast_grads[names.index("router.weight")].abs().sum() > 0


def test_moe_dense_mixes_every_expert_with_per_task_softmax() -> None:
    torch.manual_seed(0)
    model = build_arch("moe_dense", SPEC, {"num_experts": 8, "expert_hidden": [16, 8], "tower": [8]})
    emb, dense, domain = inputs()
    out = model(emb, dense, domain)
    h, logits = model.encode(emb, dense)
    experts = model.experts.forward_groups([h] * 8)  # E x [B, D]
    mixed = torch.stack([
        sum(torch.softmax(logits[:, t], -1)[:, e:e + 1] * experts[e] for e in range(8)) for t in range(3)
    ], 1)
    torch.testing.assert_close(out.logits, model.heads(mixed))
    assert out.aux_loss is None and out.logits.shape == (B, 3)
