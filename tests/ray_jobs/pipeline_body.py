"""Per-rank body of the pipelined-step test (imported by spawned processes)."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.distributed as dist

from modules.model import SeesawModel, embedding_tables
from ray_jobs.data.collate import Collator
from ray_jobs.training.epoch import train_epoch
from sharding.optim import OptimConfig, combined_optimizer
from sharding.parallel import shard_model
from sharding.planner import make_topology, plan_sharding
from sharding.state import load_full_state, local_pieces
from tests.factories import random_table, tiny_spec

LOCAL_BATCH = 16
OPTIM = OptimConfig(sparse_lr=0.1, dense_lr=0.01)


def _sharded(spec, arch: str, world_size: int, full_state: dict[str, torch.Tensor]):
    model = SeesawModel(spec, arch, device="meta")
    plan = plan_sharding(model, embedding_tables(spec, model.table_sets), make_topology(world_size, "cpu"),
                         LOCAL_BATCH, pg=dist.GroupMember.WORLD)
    sharded = shard_model(model, plan, torch.device("cpu"), OPTIM)
    load_full_state(sharded, full_state)
    return sharded, combined_optimizer(sharded, OPTIM)


def _local_state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """Every state entry as this rank's local values (sharded tables: their local shards)."""
    out = {}
    for key, value in model.state_dict().items():
        pieces = [piece.detach().flatten() for _, piece in local_pieces(value)]
        out[key] = torch.cat(pieces).numpy().copy() if pieces else np.zeros(0, np.float32)
    return out


def pipeline_vs_plain(rank: int, world_size: int, archs: list[str], steps: int) -> dict[str, dict]:
    """For each arch: `steps` steps of `train_epoch` (TrainPipelineSparseDist) and of a plain
    forward / zero_grad / backward / step loop, from equal weights on equal batches. Returns
    both runs' per-step task losses, their final local states, the untrained state, and the
    eval-mode logits of both models on a fresh batch after training (the pipeline must have
    given the model its ordinary forward back)."""
    spec = tiny_spec()
    results = {}
    for arch in archs:
        torch.manual_seed(0)
        full_state = copy.deepcopy(SeesawModel(spec, arch).state_dict())
        collate = Collator(spec, SeesawModel(spec, arch, device="meta").kjt_keys)
        batches = [collate(random_table(spec, LOCAL_BATCH, seed=100 * rank + step)) for step in range(steps)]
        probe = collate(random_table(spec, LOCAL_BATCH, seed=999 + rank))

        piped, piped_opt = _sharded(spec, arch, world_size, full_state)
        untrained = _local_state(piped)
        piped_losses = []
        torch.manual_seed(1)  # equal dropout masks in both runs
        stats = train_epoch(piped, piped_opt, batches, torch.device("cpu"),
                            on_step=lambda s: piped_losses.append(s.loss_sum.clone()), pipelined=True)
        piped_losses = [piped_losses[0]] + [b - a for a, b in zip(piped_losses, piped_losses[1:])]

        plain, plain_opt = _sharded(spec, arch, world_size, full_state)
        plain.train()
        torch.manual_seed(1)
        plain_losses = []
        for batch in batches:
            loss, out = plain(batch)
            plain_opt.zero_grad()
            loss.backward()
            plain_opt.step()
            plain_losses.append(out.task_losses)

        piped.eval(), plain.eval()
        with torch.no_grad():
            probe_piped, probe_plain = piped(probe)[1].logits, plain(probe)[1].logits
        results[arch] = {
            "steps": stats.steps,
            "piped_losses": torch.stack(piped_losses).numpy(),
            "plain_losses": torch.stack(plain_losses).numpy(),
            "piped": _local_state(piped), "plain": _local_state(plain), "untrained": untrained,
            "probe_piped": probe_piped.numpy().copy(), "probe_plain": probe_plain.numpy().copy(),
        }
    return results
