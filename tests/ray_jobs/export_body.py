"""Per-rank body of the export test: train a sharded model, checkpoint it, score a split."""

from __future__ import annotations

import copy

import numpy as np
import torch

from modules.model import SeesawModel
from ray_jobs.data.collate import Collator
from ray_jobs.evaluation.predictions import gather, predict
from ray_jobs.training.epoch import train_epoch
from sharding.checkpoint import save_sharded
from tests.factories import random_table, tiny_spec
from tests.ray_jobs.pipeline_body import LOCAL_BATCH, _sharded

TEST_ROWS = 70  # per rank


def train_checkpoint_score(rank: int, world_size: int, arch: str, checkpoint: str) -> np.ndarray:
    """3 steps of `train_epoch` on this rank's rows, a DCP checkpoint of every rank's shards in
    `checkpoint`, then the probabilities [world_size * TEST_ROWS, T] that evaluation's `predict`
    + `gather` give on the rows `random_table(spec, TEST_ROWS, seed=500 + rank)` of each rank."""
    spec = tiny_spec()
    torch.manual_seed(0)
    full_state = copy.deepcopy(SeesawModel(spec, arch).state_dict())
    sharded, optimizer = _sharded(spec, arch, world_size, full_state)
    collate = Collator(spec, SeesawModel(spec, arch, device="meta").kjt_keys)
    batches = [collate(random_table(spec, LOCAL_BATCH, seed=10 * rank + s)) for s in range(3)]
    train_epoch(sharded, optimizer, batches, torch.device("cpu"))
    save_sharded(checkpoint, sharded, optimizer)
    test = random_table(spec, TEST_ROWS, seed=500 + rank)
    scored = gather(predict(sharded, [collate(test.slice(0, 40)), collate(test.slice(40))],
                            collate.padding_batch(), torch.device("cpu")))
    return scored.probs
