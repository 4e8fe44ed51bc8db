"""Per-rank bodies for the lockstep tests (imported by spawned processes)."""

from __future__ import annotations

import torch

from modules.model import SeesawModel
from ray_jobs.data.collate import Collator
from ray_jobs.evaluation.predictions import predict
from ray_jobs.training.lockstep import lockstep
from tests.factories import random_table, tiny_spec

BATCHES_PER_RANK = (5, 8)  # uneven shards


def count_steps(rank: int, world_size: int) -> dict:
    mine = list(range(BATCHES_PER_RANK[rank]))
    train = list(lockstep(mine))
    padded = list(lockstep(mine, pad=lambda: "pad"))
    return {"train": train, "padded": padded}


def predict_uneven(rank: int, world_size: int) -> int:
    """Evaluation over uneven shards: every real row is scored, no padding row leaks out."""
    spec = tiny_spec()
    torch.manual_seed(0)
    model = SeesawModel(spec, "sharedbottom")
    collate = Collator(spec, model.kjt_keys)
    table = random_table(spec, 10 * BATCHES_PER_RANK[rank], seed=rank)
    batches = (collate(table.slice(10 * i, 10)) for i in range(BATCHES_PER_RANK[rank]))
    return len(predict(model, batches, collate.padding_batch(), torch.device("cpu")).labels)
