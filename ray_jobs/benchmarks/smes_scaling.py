"""How SMES's step time grows with the expert count E at fixed K, against the dense MoE.

SMES runs each sample on at most K_s + T * K_a experts, so its forward+backward time should stay
nearly flat as E grows, while `moe_dense` (every expert on every row) grows linearly in E.
Timed with torch.utils.benchmark (warm-up + blocked autorange, median) on a fixed thread count.

    python -m ray_jobs.benchmarks.smes_scaling
"""

from __future__ import annotations

import sys

from typing import Callable, Sequence

import torch
from torch.utils import benchmark

from modules.dense.base import ArchOutput
from modules.dense.registry import build_arch
from modules.spec import DatasetSpec, SparseFeature
from ray_jobs.core.tables import text


def synthetic_spec(num_features: int, embedding_dim: int, num_dense: int, num_tasks: int) -> DatasetSpec:
    """A spec of `num_features` context features (the benchmark only needs widths)."""
    return DatasetSpec(
        sparse_features=tuple(SparseFeature(f"f{i}", 1000, embedding_dim) for i in range(num_features)),
        dense_features=tuple(f"d{i}" for i in range(num_dense)),
        tasks=tuple(f"task{i}" for i in range(num_tasks)),
        domains=("d",),
    )


def _step(arch: torch.nn.Module, forward: Callable[..., ArchOutput], embeddings: dict[str, torch.Tensor],
          dense: torch.Tensor, domain: torch.Tensor) -> Callable[[], None]:
    """One `forward` + backward of `arch` (gradients of parameters and embeddings), zeroed after."""

    def step() -> None:
        out = forward(embeddings, dense, domain)
        loss = out.logits.sum() + (out.aux_loss if out.aux_loss is not None else 0.0)
        loss.backward()
        arch.zero_grad(set_to_none=True)

    return step


def smes_scaling(
    expert_counts: Sequence[int] = (8, 32, 128),
    k_shared: int = 2,
    k_adaptive: int = 1,
    batch: int = 1024,
    num_tasks: int = 2,
    expert_hidden: tuple[int, ...] = (128, 64),
    num_features: int = 8,
    embedding_dim: int = 16,
    num_dense: int = 4,
    threads: int = 1,
    min_run_time: float = 1.0,
) -> list[dict]:
    """Median forward+backward step time of `smes` and `moe_dense` for each E.

    Returns one dict per E: experts, k, batch, threads, smes_ms (grouped fast path),
    smes_reference_ms (same model, every expert run and masked), moe_dense_ms, speedup
    (moe_dense_ms / smes_ms) and mean_union (SMES's mean |U| per sample).
    """
    torch.manual_seed(0)
    spec = synthetic_spec(num_features, embedding_dim, num_dense, num_tasks)
    embeddings = {f: torch.randn(batch, embedding_dim, requires_grad=True) for f in spec.feature_names}
    dense = torch.randn(batch, num_dense)
    domain = torch.zeros(batch, dtype=torch.long)
    rows = []
    for experts in expert_counts:
        row: dict = {"experts": experts, "k": k_shared + k_adaptive, "batch": batch, "threads": threads}
        params = {"num_experts": experts, "expert_hidden": list(expert_hidden)}
        smes = build_arch("smes", spec, {**params, "k_shared": k_shared, "k_adaptive": k_adaptive})
        dense_moe = build_arch("moe_dense", spec, params)
        runs = {"smes": (smes, smes.forward), "smes_reference": (smes, smes.reference_forward),
                "moe_dense": (dense_moe, dense_moe.forward)}
        for name, (arch, forward) in runs.items():
            step = _step(arch, forward, embeddings, dense, domain)
            timer = benchmark.Timer(stmt="step()", globals={"step": step}, num_threads=threads, label=name)
            timer.timeit(2)  # warm-up
            row[f"{name}_ms"] = timer.blocked_autorange(min_run_time=min_run_time).median * 1e3
        with torch.no_grad():
            row["mean_union"] = smes(embeddings, dense, domain).telemetry["mean_union"].item()
        row["speedup"] = row["moe_dense_ms"] / row["smes_ms"]
        rows.append(row)
    return rows


def main() -> int:
    rows = smes_scaling()
    print(f"forward+backward step, batch {rows[0]['batch']}, K = {rows[0]['k']}, {rows[0]['threads']} thread(s)")
    keys = ("experts", "smes_ms", "smes_reference_ms", "moe_dense_ms", "speedup", "mean_union")
    print(text([[str(r["experts"]), *(f"{r[k]:.2f}" for k in keys[1:])] for r in rows],
               ["E", "smes ms", "smes ref ms", "moe_dense ms", "speedup", "mean |U|"], rule=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
