"""STEM-Net gradient isolation on the 2-rank DMP-sharded model (issue 4; the unsharded autograd
check is tests/modules/test_stem.py): one step on task i's loss leaves task j's embedding tables,
expert, gate and tower bit-identical and moves the shared ones and task i's own."""

from modules.dense.base import SHARED_SET
from tests.distributed import run_distributed
from tests.sharding.stem_isolation_body import NUM_TASKS, isolation


def test_task_loss_moves_only_shared_and_own_parameters_when_sharded():
    results = run_distributed(isolation, 2, ("table_wise",))
    owners = results[0]["owners"]
    tasks = sorted({o for o in owners.values() if o != SHARED_SET})
    assert len(tasks) == NUM_TASKS
    for r in results:
        assert r["sharding_types"] == ["table_wise"]
    for i, task in enumerate(tasks):
        expected = {label: owner in (SHARED_SET, task) for label, owner in owners.items()}
        # the independent reference: the unsharded model's autograd gradient is exactly zero
        # precisely on the other tasks' parts
        assert results[0]["reference_nonzero"][i] == expected
        changed: dict[str, bool] = {}
        for rank, r in enumerate(results):
            for label, moved in r["changed"][i].items():
                assert changed.setdefault(label, moved) == moved, f"replicas disagree on {label}"
        assert set(changed) == set(owners), "some parameter is held by no rank"
        wrong = {label: moved for label, moved in changed.items() if moved != expected[label]}
        assert not wrong, f"task {task} loss: changed != (shared or own) for {wrong}"
