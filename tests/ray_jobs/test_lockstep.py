"""Workers with uneven shards still take the same number of steps (collectives never hang)."""

import torch

from modules.model import SeesawModel
from ray_jobs.data.collate import Collator
from ray_jobs.training.epoch import train_epoch
from sharding.optim import OptimConfig, dense_optimizer, fuse_sparse_optimizer
from tests.distributed import run_distributed
from tests.factories import random_table, tiny_spec
from tests.ray_jobs.lockstep_body import BATCHES_PER_RANK, count_steps, predict_uneven


def test_uneven_shards_train_the_same_number_of_steps_and_evaluate_every_row():
    steps = run_distributed(count_steps, 2)
    shortest, longest = min(BATCHES_PER_RANK), max(BATCHES_PER_RANK)
    assert [len(r["train"]) for r in steps] == [shortest, shortest]
    assert [len(r["padded"]) for r in steps] == [longest, longest]
    assert steps[0]["padded"][shortest:] == ["pad"] * (longest - shortest)
    assert steps[1]["padded"] == list(range(longest))
    rows = run_distributed(predict_uneven, 2)
    assert rows == [10 * n for n in BATCHES_PER_RANK]


def test_train_epoch_steps_and_learns_in_one_process():
    spec = tiny_spec()
    torch.manual_seed(0)
    model = SeesawModel(spec, "sharedbottom")
    fuse_sparse_optimizer(model.sparse_arch, OptimConfig())
    optimizer = dense_optimizer(model, OptimConfig(dense_lr=1e-2))
    collate = Collator(spec, model.kjt_keys)
    table = random_table(spec, 64, seed=2)
    batch = collate(table)
    before = model(batch)[0].item()
    stats = train_epoch(model, optimizer, (collate(table) for _ in range(30)), torch.device("cpu"), max_steps=25)
    assert stats.steps == 25 and sum(stats.batch_rows) == 25 * 64
    assert len(stats.step_s) == len(stats.wait_s) == 25
    assert model(batch)[0].item() < before, "25 steps on the same batch must lower its loss"
    metrics = stats.metrics(world_size=2, skip=5)
    assert metrics["train_samples_per_s"] == 2 * metrics["train_samples_per_s_per_worker"] > 0
