"""single_task: one table set and one model per task, nothing shared between tasks."""

from __future__ import annotations

import pytest
import torch

from modules.dense import build_arch, embedding_key
from modules.model import SeesawModel
from tests.modules.test_pepnet import assert_trains, make_inputs, make_spec

SMALL = {"bottom": [6], "tower": [4]}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_each_task_owns_a_table_set_named_after_it() -> None:
    spec = make_spec()
    arch = build_arch("single_task", spec, SMALL)
    sets = type(arch).table_sets(spec, arch.config)
    assert [s.name for s in sets] == list(spec.tasks)
    assert all(s.keys() == tuple(embedding_key(f, s.name) for f in spec.feature_names) for s in sets)
    model = SeesawModel(spec, "single_task", SMALL)
    assert len(model.kjt_keys) == spec.num_tasks * len(spec.feature_names)
    assert len({c.name for c in model.sparse_arch.embedding_bag_configs()}) == len(model.kjt_keys)


def test_forward_backward_reaches_every_parameter() -> None:
    assert_trains(build_arch("single_task", make_spec(("click", "like")), {**SMALL, "dropout": 0.1}))


def test_task_logit_depends_only_on_its_own_embeddings_and_parameters() -> None:
    spec = make_spec()
    arch = build_arch("single_task", spec, SMALL)
    embeddings, dense, domain = make_inputs(arch)
    logits = arch(embeddings, dense, domain).logits
    for i, task in enumerate(spec.tasks):
        for j, other in enumerate(spec.tasks):
            keys = [embedding_key(f, other) for f in spec.feature_names]
            params = list(arch.models[j].parameters())
            grads = torch.autograd.grad(logits[:, i].sum(), [embeddings[k] for k in keys] + params,
                                        retain_graph=True, allow_unused=True, materialize_grads=True)
            for g in grads:
                if i == j:
                    assert g.abs().sum() > 0, (task, other)
                else:
                    assert torch.equal(g, torch.zeros_like(g)), (task, other)
