"""Training runs TorchRec's TrainPipelineSparseDist on CPU as on CUDA, and it trains exactly
like the plain step."""

import numpy as np
import torch
from torchrec.distributed.train_pipeline.tracing import Tracer

from modules.dense.registry import ARCHS
from modules.model import SeesawModel
from tests.distributed import run_distributed
from tests.factories import tiny_spec
from tests.ray_jobs.pipeline_body import pipeline_vs_plain

PIPELINE_ARCHS = ["sharedbottom", "pepnet", "smes"]
STEPS = 4


def test_every_architecture_traces_with_the_pipelines_tracer():
    """The pipeline fx-traces the model with the EBC and the dense arch as leaves; the EBC's
    only input must be the batch's `sparse` attribute (else it is not pipelined)."""
    for arch in sorted(ARCHS):
        model = SeesawModel(tiny_spec(), arch)
        graph = Tracer(leaf_modules=["sparse_arch", "dense_arch"]).trace(model)
        calls = [n for n in graph.nodes if n.op == "call_module"]
        assert [n.target for n in calls] == ["sparse_arch", "dense_arch"], arch
        (sparse_input,) = calls[0].args
        assert sparse_input.op == "call_function" and sparse_input.args[1] == "sparse", arch


def test_pipelined_training_equals_the_plain_loop_two_gloo_ranks():
    """4 steps on 2 ranks through `train_epoch` (the pipeline) and through a plain loop: equal
    per-step losses, equal parameters and embedding rows, every one of them moved; afterwards
    the model's ordinary forward is back (eval logits agree)."""
    results = run_distributed(pipeline_vs_plain, 2, PIPELINE_ARCHS, STEPS, timeout=420)
    for rank, per_arch in enumerate(results):
        for arch, r in per_arch.items():
            where = f"rank {rank} {arch}"
            assert r["steps"] == STEPS, where
            np.testing.assert_allclose(r["piped_losses"], r["plain_losses"], rtol=1e-5, atol=1e-6, err_msg=where)
            assert r["piped"].keys() == r["plain"].keys()
            for key in r["plain"]:
                np.testing.assert_allclose(r["piped"][key], r["plain"][key], rtol=1e-5, atol=1e-6,
                                           err_msg=f"{where}: {key}")
            held = [k for k in r["plain"] if r["plain"][k].size]  # table-wise: a rank holds some tables
            unmoved = [k for k in held if np.array_equal(r["plain"][k], r["untrained"][k])]
            assert not unmoved and len(held) > len(r["plain"]) // 2, f"{where}: unmoved {unmoved}"
            torch.testing.assert_close(torch.from_numpy(r["probe_piped"]), torch.from_numpy(r["probe_plain"]))
