"""Per-rank body of STEM-Net's gradient-isolation check on the DMP-sharded model (spawned processes).

The fused row-wise Adagrad never materialises embedding gradients, so isolation is observed
through one optimizer step on one task's loss: a parameter part whose gradient is exactly zero
stays bit-identical (row-wise Adagrad: state += mean(0^2), update 0 / (sqrt(state) + eps) = 0;
Adam at its first step: m = v = 0, update lr * 0 / (0 + eps) = 0), every other part moves. The
unsharded model's autograd gradients of the same loss are the independent reference.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from modules.dense.base import SHARED_SET
from modules.model import SeesawModel, StepOutput, embedding_tables, multitask_loss, table_name
from ray_jobs.data.collate import Collator
from sharding.optim import OptimConfig, dense_optimizer
from sharding.parallel import shard_model
from sharding.planner import PlannerConfig, make_topology, plan_sharding
from sharding.state import load_full_state, local_pieces
from tests.factories import random_table, tiny_spec

LOCAL_BATCH = 16
NUM_TASKS = 3
PARAMS = {"expert_hidden": [16, 8], "gate": [8], "tower": [8], "num_shared_experts": 2, "num_specific_experts": 1}
OPTIM = OptimConfig(sparse_lr=0.1, dense_lr=0.01)


class OneTaskLoss(SeesawModel):
    """A SeesawModel trained on task `task`'s loss alone; every task's logits are still computed
    (STEM's gates mix all experts), only the loss leaves the other tasks out."""

    def __init__(self, *args, task: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.task = task

    def forward(self, batch):
        out = self.predict(batch)
        _, task_losses = multitask_loss(out, batch.labels, batch.weight)
        return task_losses[self.task], StepOutput(out.logits.detach(), task_losses.detach(), torch.zeros(()))


def parts(model: SeesawModel) -> dict[str, tuple[str, int | None, str]]:
    """label -> (state-dict name, expert index or None, owner), owner = SHARED_SET or a task.

    Tables belong to their table set (STEM: the shared set or one task's). Experts: the first
    `num_shared_experts` slices of every ExpertBank tensor are shared, then one per task. Gate t
    and tower t belong to task t.
    """
    tasks = model.spec.tasks
    owners = [SHARED_SET] * PARAMS["num_shared_experts"] + [t for t in tasks for _ in range(PARAMS["num_specific_experts"])]
    table_owner = {table_name(key): s.name for s in model.table_sets for key in s.keys()}  # STEM: set name = task
    out: dict[str, tuple[str, int | None, str]] = {}
    for name in model.state_dict():
        if name.startswith("sparse_arch."):
            out[name] = (name, None, table_owner[name.split(".")[2]])
        elif name.startswith("dense_arch.experts."):
            for e, owner in enumerate(owners):
                out[f"{name}[{e}]"] = (name, e, owner)
        elif name.startswith(("dense_arch.gates.", "dense_arch.towers.")):
            out[name] = (name, None, tasks[int(name.split(".")[2])])
        else:
            raise AssertionError(f"unclassified STEM parameter {name}")
    assert {o for _, _, o in out.values()} == {SHARED_SET, *tasks}
    return out


def _piece(tensor: torch.Tensor, expert: int | None) -> torch.Tensor:
    return tensor if expert is None else tensor[expert]


def isolation(rank: int, world_size: int, sharding_types: tuple[str, ...]) -> dict:
    """For each task i: which parts one sharded step on task i's loss changed (this rank's
    pieces), and (rank 0) which parts the unsharded autograd gradient of that loss touches."""
    spec = tiny_spec(num_tasks=NUM_TASKS)
    table = random_table(spec, LOCAL_BATCH * world_size, seed=7)
    result: dict = {"changed": {}, "reference_nonzero": {}, "sharding_types": set()}
    for task in range(NUM_TASKS):
        torch.manual_seed(0)
        reference = OneTaskLoss(spec, "stem", PARAMS, task=task)
        full_state = {k: v.clone() for k, v in reference.state_dict().items()}
        labelled = parts(reference)
        collate = Collator(spec, reference.kjt_keys)

        if rank == 0:  # unsharded autograd gradients of task i's loss on the global batch
            params = dict(reference.named_parameters())
            loss, _ = reference(collate(table))
            grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()), materialize_grads=True)))
            result["reference_nonzero"][task] = {
                label: bool(_piece(grads[name], e).abs().sum() > 0) for label, (name, e, _) in labelled.items()}

        model = OneTaskLoss(spec, "stem", PARAMS, task=task, device="meta")
        plan = plan_sharding(model, embedding_tables(spec, model.table_sets), make_topology(world_size, "cpu"),
                             LOCAL_BATCH, PlannerConfig(sharding_types=sharding_types), pg=dist.GroupMember.WORLD)
        result["sharding_types"] |= {p.sharding_type for m in plan.plan.values() for p in m.values()}
        sharded = shard_model(model, plan, torch.device("cpu"), OPTIM)
        load_full_state(sharded, full_state)
        optimizer = dense_optimizer(sharded, OPTIM)
        loss, _ = sharded(collate(table.slice(rank * LOCAL_BATCH, LOCAL_BATCH)))
        loss.backward()  # row-wise Adagrad updates the tables inside this call
        optimizer.step()

        state = sharded.state_dict()
        changed: dict[str, bool] = {}
        for label, (name, e, _) in labelled.items():
            for index, local in local_pieces(state[name]):  # table-wise: a table lives on one rank
                before = full_state[name][index]
                moved = not torch.equal(_piece(local, e), _piece(before, e))
                changed[label] = changed.get(label, False) or moved
        result["changed"][task] = changed
    result["sharding_types"] = sorted(result["sharding_types"])
    result["owners"] = {label: owner for label, (_, _, owner) in labelled.items()}
    return result
