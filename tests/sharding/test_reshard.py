"""Issue 9: a DCP checkpoint written by 2 gloo ranks under one sharding plan loads under another
plan, and in one unsharded process, and predicts identically. (2 Ray workers -> 1 through the
evaluate job is tests/ray_jobs/test_end_to_end.py.)"""

from pathlib import Path

import torch

from modules.model import SeesawModel
from ray_jobs.data.collate import Collator
from sharding.checkpoint import load_sharded
from tests.distributed import run_distributed
from tests.factories import random_table, tiny_spec
from tests.sharding.reshard_body import ARCH, LOCAL_BATCH, reshard_both_ways


def test_checkpoint_loads_under_another_plan_and_on_one_process(tmp_path):
    results = run_distributed(reshard_both_ways, 2, str(tmp_path))
    spec = tiny_spec(num_tasks=3)
    batch = Collator(spec, SeesawModel(spec, ARCH).kjt_keys)(random_table(spec, LOCAL_BATCH * 2, seed=5))
    for case in ("table_wise->column_wise", "column_wise->table_wise"):
        write, read = case.split("->")
        per_rank = [{k: torch.from_numpy(v) if hasattr(v, "dtype") else v for k, v in r[case].items()}
                    for r in results]
        for rank, r in enumerate(per_rank):
            assert r["written_types"] == [write] and r["loaded_types"] == [read]
            assert r["progress"]["step"] == 1
            assert not torch.allclose(r["before"], r["want"]), "the fresh model already predicted the same"
            # same weights, same pooled sums per column: bit-identical under the other plan
            torch.testing.assert_close(r["got"], r["want"], rtol=0, atol=0, msg=f"{case} rank {rank}")

        # the same checkpoint in this single process: unsharded, no process group
        torch.manual_seed(2)
        single = SeesawModel(spec, ARCH)
        load_sharded(Path(tmp_path) / write, single)
        single.eval()
        with torch.no_grad():
            logits = single(batch)[1].logits
        # torch's EmbeddingBag here vs FBGEMM's kernel there: float rounding may differ
        torch.testing.assert_close(logits, torch.cat([r["want"] for r in per_rank]), rtol=1e-6, atol=1e-6)
