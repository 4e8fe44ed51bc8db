"""Resuming from a checkpoint restores the optimizer too: the next step equals the uninterrupted one."""

import torch
from torchrec.optim.keyed import CombinedOptimizer

from modules.model import SeesawModel
from ray_jobs.data.collate import Collator
from sharding.checkpoint import load_sharded, save_sharded
from sharding.optim import OptimConfig, dense_optimizer
from tests.factories import random_table, tiny_spec


def _model_and_optimizer(seed: int):
    torch.manual_seed(seed)
    model = SeesawModel(tiny_spec(), "sharedbottom")
    return model, CombinedOptimizer([("dense", dense_optimizer(model, OptimConfig(dense_lr=0.01)))])


def _step(model, optimizer, batch) -> None:
    loss, _ = model(batch)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def test_fresh_adam_gets_its_moments_back_and_steps_identically(tmp_path):
    model, optimizer = _model_and_optimizer(seed=0)
    batches = [Collator(tiny_spec(), model.kjt_keys)(random_table(tiny_spec(), 16, seed=s)) for s in range(3)]
    for batch in batches[:2]:
        _step(model, optimizer, batch)
    save_sharded(tmp_path / "ckpt", model, optimizer)

    resumed, resumed_optimizer = _model_and_optimizer(seed=1)  # a fresh Adam has no state yet
    load_sharded(tmp_path / "ckpt", resumed, resumed_optimizer)
    want, got = optimizer.state_dict()["state"], resumed_optimizer.state_dict()["state"]
    assert sorted(got) == sorted(want) and want
    for key in want:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(got[key][name], want[key][name], rtol=0, atol=0)

    _step(model, optimizer, batches[2])
    _step(resumed, resumed_optimizer, batches[2])
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)
