"""The benchmark's own arithmetic, and the step optimisations it measures change no result."""

import numpy as np
import pytest
from torch import nn

from modules.dense.registry import build_arch
from ray_jobs.benchmarks.end_to_end import dense_flops_per_sample
from ray_jobs.benchmarks.hardware import CpuSnapshot, cores_busy
from ray_jobs.benchmarks.step_breakdown import VARIANTS
from tests.distributed import run_distributed
from tests.factories import tiny_spec
from tests.ray_jobs.step_variants_body import train_every_variant


@pytest.mark.parametrize("arch", ["sharedbottom", "pepnet"])
def test_fused_adam_and_unreplicated_dense_train_exactly_like_the_plain_step(arch):
    """Fused Adam (one kernel) and skipping DDP in a group of one are speed-ups only: after 6
    steps every parameter, embedding row and optimizer-visible state matches the step built the
    old way (for-loop Adam, DDP) to float32 rounding."""
    states = run_distributed(train_every_variant, 1, arch, 6, timeout=120)[0]
    before = states[VARIANTS[0].name]
    for variant in VARIANTS[1:]:
        after = states[variant.name]
        assert after.keys() == before.keys()
        for key in before:
            np.testing.assert_allclose(after[key], before[key], rtol=1e-5, atol=1e-6, err_msg=f"{variant.name}: {key}")
    unchanged = [k for k in before if np.array_equal(before[k], states["untrained"][k])]
    assert not unchanged, f"6 steps must move every parameter and table: {unchanged}"


def test_dense_flops_count_every_weight_matrix_three_times_two():
    spec = tiny_spec()
    arch = build_arch("sharedbottom", spec, {"bottom": [16, 8], "tower": [4]})
    width = sum(f.embedding_dim for f in spec.sparse_features) + len(spec.dense_features)
    macs = width * 16 + 16 * 8 + spec.num_tasks * (8 * 4 + 4 * 1)
    assert sum(1 for m in arch.modules() if isinstance(m, nn.Linear)) == 2 + 2 * spec.num_tasks
    assert dense_flops_per_sample(arch) == 6 * macs


def test_cores_busy_reads_machine_and_process_shares():
    start = CpuSnapshot(wall_s=10.0, machine_busy_s=100.0, machine_total_s=400.0, process_s=5.0)
    end = CpuSnapshot(wall_s=12.0, machine_busy_s=103.0, machine_total_s=404.0, process_s=6.5)
    busy = cores_busy(start, end)
    assert busy["machine_cores_busy"] == pytest.approx(busy["cores"] * 3.0 / 4.0)
    assert busy["process_cores_busy"] == pytest.approx(0.75)
    now = CpuSnapshot.take()
    assert now.machine_busy_s <= now.machine_total_s and now.process_s > 0
