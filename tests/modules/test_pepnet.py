"""PEPNet: Gate NU range, EPNet/PPNet stop-gradients (autograd vs hand-written references),
per-task gates, ablations. Also holds the small spec and input helpers the other dense tests use."""

from __future__ import annotations

import pytest
import torch

from modules.dense import build_arch
from modules.dense.base import DenseArch
from modules.dense.pepnet import EPNet, GatedTower, GateNU, PEPNet, PPNetTowers
from modules.spec import DatasetSpec, SparseFeature

B = 8


def make_spec(tasks: tuple[str, ...] = ("click", "like", "share")) -> DatasetSpec:
    """One feature per role, two dense features, 2-3 tasks."""
    return DatasetSpec(
        sparse_features=(
            SparseFeature("uid", 20, 4, role="user"),
            SparseFeature("iid", 20, 3, role="item"),
            SparseFeature("aid", 10, 2, role="author"),
            SparseFeature("did", 3, 2, role="domain"),
            SparseFeature("ctx", 5, 3, role="context"),
        ),
        dense_features=("d0", "d1"),
        tasks=tasks,
        domains=("a", "b", "c"),
    )


def make_inputs(arch: DenseArch, batch: int = B) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Random leaf embeddings for every key of the arch's table sets, dense [B, F], domain [B]."""
    spec = arch.spec
    embeddings = {
        key: torch.randn(batch, spec.feature(f).embedding_dim, requires_grad=True)
        for table_set in type(arch).table_sets(spec, arch.config)
        for f, key in zip(table_set.features, table_set.keys())
    }
    dense = torch.randn(batch, len(spec.dense_features))
    domain = torch.randint(0, spec.num_domains, (batch,))
    return embeddings, dense, domain


def assert_trains(arch: DenseArch) -> None:
    """Forward gives [B, T]; backward reaches every parameter and every embedding."""
    embeddings, dense, domain = make_inputs(arch)
    logits = arch(embeddings, dense, domain).logits
    assert logits.shape == (B, arch.spec.num_tasks)
    (logits * torch.randn_like(logits)).sum().backward()
    for name, p in arch.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    for key, e in embeddings.items():
        assert e.grad is not None and e.grad.abs().sum() > 0, key


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_gate_nu_matches_formula_stays_in_range_and_scales_with_gamma() -> None:
    gate1 = GateNU(6, 5, 8, gamma=1.0)
    gate3 = GateNU(6, 5, 8, gamma=3.0)
    gate3.load_state_dict(gate1.state_dict())
    x = torch.randn(16, 6)
    hand = torch.sigmoid(torch.relu(x @ gate1.hidden.weight.T + gate1.hidden.bias) @ gate1.out.weight.T
                         + gate1.out.bias)
    torch.testing.assert_close(gate1(x), hand)
    torch.testing.assert_close(gate3(x), 3.0 * gate1(x))
    extreme = torch.randn(64, 6) * 1e3
    for gate, gamma in ((gate1, 1.0), (gate3, 3.0)):
        out = gate(extreme)
        assert out.min() >= 0.0 and out.max() <= gamma


def test_epnet_stopgrad_copy_of_e_gets_no_gradient() -> None:
    epnet = EPNet(domain_dim=2, general_dim=7, gate_hidden=8)
    dom = torch.randn(B, 2, requires_grad=True)
    general = torch.randn(B, 7, requires_grad=True)
    cotangent = torch.randn(B, 7)
    out = epnet(dom, general)
    g_general, g_dom = torch.autograd.grad((out * cotangent).sum(), [general, dom])
    delta = epnet.gate(torch.cat([dom, general], dim=-1))
    # d out / dE is delta alone: the gate's input acts as a constant.
    torch.testing.assert_close(g_general, cotangent * delta.detach())
    assert g_dom.abs().sum() > 0
    # Without the stop-gradient the gradient would differ (so the check above can fail).
    (g_full,) = torch.autograd.grad((delta * general * cotangent).sum(), [general])
    assert not torch.allclose(g_full, g_general)


@pytest.mark.parametrize("after", [False, True])
def test_ppnet_tower_input_gets_no_gradient_through_gates(after: bool) -> None:
    tower = GatedTower(in_dim=6, prior_dim=4, hidden=(5, 3), gate_hidden=8, gate_after_activation=after)
    assert [g.out.out_features for g in tower.gates] == ([5, 3] if after else [6, 5, 3])
    x = torch.randn(B, 6, requires_grad=True)
    prior = torch.randn(B, 4, requires_grad=True)
    cotangent = torch.randn(B, 1)
    out = tower(x, prior)
    g_x, g_prior = torch.autograd.grad((out * cotangent).sum(), [x, prior])
    assert g_prior.abs().sum() > 0

    def reference(gate_x: torch.Tensor) -> torch.Tensor:
        deltas = [g(torch.cat([prior, gate_x], dim=-1)) for g in tower.gates]
        h = x
        for i, linear in enumerate(tower.linears):
            if after:
                h = linear(h)
                h = torch.relu(h) * deltas[i] if i < len(deltas) else h
            else:
                h = linear(h * deltas[i])
                h = torch.relu(h) if i < len(tower.linears) - 1 else h
        return h

    constant_gate = reference(x.detach())
    torch.testing.assert_close(out, constant_gate)
    (g_ref,) = torch.autograd.grad((constant_gate * cotangent).sum(), [x])
    torch.testing.assert_close(g_x, g_ref)
    (g_full,) = torch.autograd.grad((reference(x) * cotangent).sum(), [x])
    assert not torch.allclose(g_full, g_x)


def test_ppnet_each_task_has_its_own_per_layer_gates() -> None:
    towers = PPNetTowers(in_dim=6, prior_dim=4, num_tasks=3, hidden=(5, 3), gate_hidden=8)
    x = torch.randn(B, 6)
    prior = torch.randn(B, 4)
    logits = towers([x] * 3, prior)
    for i in range(3):
        gate_params = [list(t.gates.parameters()) for t in towers.towers]
        flat = [p for params in gate_params for p in params]
        grads = torch.autograd.grad(logits[:, i].sum(), flat, retain_graph=True,
                                    allow_unused=True, materialize_grads=True)
        offset = 0
        for j, params in enumerate(gate_params):
            norm = sum(g.abs().sum() for g in grads[offset:offset + len(params)])
            offset += len(params)
            assert (norm > 0) if i == j else (norm == 0), (i, j)
    assert all(len(t.gates) == 3 for t in towers.towers)  # hidden (5, 3) + the logit layer


@pytest.mark.parametrize("params", [
    {}, {"use_epnet": False}, {"use_ppnet": False}, {"gate_after_activation": True, "dropout": 0.1},
])
def test_pepnet_forward_backward(params: dict) -> None:
    arch = build_arch("pepnet", make_spec(), {"tower": [6, 4], "gate_hidden": 8, **params})
    assert isinstance(arch, PEPNet)
    assert_trains(arch)


def test_pepnet_ablation_flags_change_the_module_set() -> None:
    spec = make_spec()
    layers = 3  # tower (6, 4) + the logit layer, each with its input gated

    def gates(params: dict) -> tuple[int, bool, bool]:
        arch = build_arch("pepnet", spec, {"tower": [6, 4], **params})
        n = sum(isinstance(m, GateNU) for m in arch.modules())
        return n, hasattr(arch, "epnet"), isinstance(arch.towers, PPNetTowers)

    assert gates({}) == (1 + spec.num_tasks * layers, True, True)
    assert gates({"use_ppnet": False}) == (1, True, False)
    assert gates({"use_epnet": False}) == (spec.num_tasks * layers, False, True)
    assert gates({"gate_after_activation": True}) == (1 + spec.num_tasks * 2, True, True)


def test_pepnet_epnet_gate_reads_domain_features_and_towers_read_gated_e() -> None:
    """End to end against the pieces: logits = PPNet(EPNet(E(did), E), prior)."""
    arch = build_arch("pepnet", make_spec(), {"tower": [6, 4], "gate_hidden": 8})
    embeddings, dense, domain = make_inputs(arch)
    e = torch.cat([embeddings[k] for k in ("uid", "iid", "aid", "did", "ctx")] + [dense], dim=-1)
    o_ep = arch.epnet.gate(torch.cat([embeddings["did"], e], dim=-1)) * e
    prior = torch.cat([embeddings[k] for k in ("uid", "iid", "aid")], dim=-1)
    expected = torch.cat([t(o_ep, prior) for t in arch.towers.towers], dim=-1)
    torch.testing.assert_close(arch(embeddings, dense, domain).logits, expected)
