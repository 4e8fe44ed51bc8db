"""Per-rank body of the sharded-vs-unsharded comparison (imported by spawned processes)."""

from __future__ import annotations

import copy

import torch
import torch.distributed as dist

from modules.model import SeesawModel, embedding_tables
from ray_jobs.data.collate import Collator
from sharding.optim import OptimConfig, dense_optimizer, fuse_sparse_optimizer
from sharding.parallel import shard_model
from sharding.planner import PlannerConfig, make_topology, plan_sharding
from sharding.state import load_full_state, local_mismatches
from tests.factories import random_table, tiny_spec

LOCAL_BATCH = 16
OPTIM = OptimConfig(sparse_lr=0.1, dense_lr=0.01)


def compare_one_step(rank: int, world_size: int, arch: str, params: dict, sharding_types: tuple[str, ...] | None) -> dict:
    """Sharded (DMP, fused Adagrad) vs unsharded (per-parameter Adagrad hooks) from equal weights.

    The unsharded reference sees the global batch (all ranks' rows) with a mean loss; DDP
    averages the dense gradients of the ranks' local means, which is the same gradient. TorchRec
    sums the embedding gradients over ranks (world_size x the global mean); row-wise Adagrad's
    first step is invariant to that scale, so parameters must still agree.
    """
    spec = tiny_spec(num_tasks=3)
    table = random_table(spec, LOCAL_BATCH * world_size, seed=11)
    torch.manual_seed(0)
    reference = SeesawModel(spec, arch, params)
    full_state = copy.deepcopy(reference.state_dict())
    collate = Collator(spec, reference.kjt_keys)
    local_batch = collate(table.slice(rank * LOCAL_BATCH, LOCAL_BATCH))

    model = SeesawModel(spec, arch, params, device="meta")
    plan = plan_sharding(model, embedding_tables(spec, model.table_sets), make_topology(world_size, "cpu"),
                         LOCAL_BATCH, PlannerConfig(sharding_types=sharding_types), pg=dist.GroupMember.WORLD)
    sharded = shard_model(model, plan, torch.device("cpu"), OPTIM)
    load_full_state(sharded, full_state)
    sharded_opt = dense_optimizer(sharded, OPTIM)

    reference.eval(), sharded.eval()  # no dropout: outputs must be comparable
    ref_local_loss, ref_local_out = reference(local_batch)
    loss, out = sharded(local_batch)
    torch.testing.assert_close(out.logits, ref_local_out.logits)
    torch.testing.assert_close(loss, ref_local_loss)

    loss.backward()
    sharded_opt.step()

    fuse_sparse_optimizer(reference.sparse_arch, OPTIM)
    reference_opt = dense_optimizer(reference, OPTIM)
    ref_loss, _ = reference(collate(table))
    ref_loss.backward()
    reference_opt.step()

    mismatches = local_mismatches(sharded, reference.state_dict(), atol=1e-5, rtol=1e-4)
    changed = sum(not torch.equal(v, full_state[k]) for k, v in reference.state_dict().items())
    _, out_after = sharded(local_batch)
    _, ref_out_after = reference(local_batch)
    torch.testing.assert_close(out_after.logits, ref_out_after.logits, atol=1e-5, rtol=1e-4)
    types = sorted({p.sharding_type for m in plan.plan.values() for p in m.values()})
    return {"mismatches": mismatches, "changed": changed, "total": len(full_state), "sharding_types": types}


# SMES's load-balance loss is a product of batch means (f_e * P_e), so the mean of the ranks'
# local losses is not the loss of the global batch the reference sees: compare SMES without it
# (the load-balance term and its gradient are tested in tests/modules/test_smes.py).
PARAMS = {"smes": {"beta": 0.0}}


def compare_archs(rank: int, world_size: int, archs: list[str]) -> dict[str, dict]:
    """`compare_one_step` for each architecture in turn, table-wise sharded."""
    results = {}
    for arch in archs:
        try:
            results[arch] = compare_one_step(rank, world_size, arch, PARAMS.get(arch, {}), ("table_wise",))
        except AssertionError as exc:  # report every architecture, not just the first failure
            results[arch] = {"mismatches": [str(exc).splitlines()[0] + " " + str(exc).splitlines()[-1]]}
    return results
