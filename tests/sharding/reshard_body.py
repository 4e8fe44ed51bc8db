"""Per-rank body of the resharding check: a checkpoint written under one sharding plan loads
under another and predicts identically (spawned processes, gloo)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from modules.model import SeesawModel, embedding_tables
from ray_jobs.data.collate import Collator
from sharding.checkpoint import load_sharded, save_sharded
from sharding.optim import OptimConfig, combined_optimizer
from sharding.parallel import shard_model
from sharding.planner import PlannerConfig, make_topology, plan_sharding
from sharding.state import load_full_state
from tests.factories import random_table, tiny_spec

LOCAL_BATCH = 16
OPTIM = OptimConfig(sparse_lr=0.1, dense_lr=0.01)
ARCH = "stem"  # 4 table sets x 6 features: 24 tables of mixed sizes spread over the ranks


def _sharded(world_size: int, sharding_types: tuple[str, ...], seed: int):
    torch.manual_seed(seed)  # dense weights; the tables get DMP's own initialisation
    spec = tiny_spec(num_tasks=3)
    model = SeesawModel(spec, ARCH, device="meta")
    plan = plan_sharding(model, embedding_tables(spec, model.table_sets), make_topology(world_size, "cpu"),
                         LOCAL_BATCH, PlannerConfig(sharding_types=sharding_types), pg=dist.GroupMember.WORLD)
    types = sorted({p.sharding_type for m in plan.plan.values() for p in m.values()})
    return model, shard_model(model, plan, torch.device("cpu"), OPTIM), types


def _logits(model, batch) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(batch)[1].logits


def write_then_reshard(rank: int, world_size: int, directory: str, write: tuple[str, ...],
                       read: tuple[str, ...]) -> dict:
    """Trains one step under plan `write`, checkpoints to `directory`, then loads the checkpoint
    into a fresh model planned with `read` (and its optimizer); predicts this rank's batch with both."""
    spec = tiny_spec(num_tasks=3)
    table = random_table(spec, LOCAL_BATCH * world_size, seed=5)
    torch.manual_seed(0)
    reference = SeesawModel(spec, ARCH)
    collate = Collator(spec, reference.kjt_keys)
    batch = collate(table.slice(rank * LOCAL_BATCH, LOCAL_BATCH))

    _, written, written_types = _sharded(world_size, write, seed=0)
    load_full_state(written, reference.state_dict())
    optimizer = combined_optimizer(written, OPTIM)
    loss, _ = written(batch)  # one step: the checkpoint holds trained weights and optimizer state
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    want = _logits(written, batch)
    save_sharded(Path(directory), written, optimizer, progress={"step": 1})

    _, loaded, loaded_types = _sharded(world_size, read, seed=1)
    before = _logits(loaded, batch)
    progress = load_sharded(Path(directory), loaded, combined_optimizer(loaded, OPTIM))
    got = _logits(loaded, batch)
    # numpy, not tensors: a tensor put on a multiprocessing queue travels as a shared-memory
    # handle that dies with this process (the parent then reads EOFError)
    return {"want": want.numpy(), "got": got.numpy(), "before": before.numpy(), "progress": progress,
            "written_types": written_types, "loaded_types": loaded_types}


def reshard_both_ways(rank: int, world_size: int, directory: str) -> dict[str, dict]:
    """table-wise -> column-wise and column-wise -> table-wise (one process start for both)."""
    return {f"{w}->{r}": write_then_reshard(rank, world_size, f"{directory}/{w}", (w,), (r,))
            for w, r in (("table_wise", "column_wise"), ("column_wise", "table_wise"))}
