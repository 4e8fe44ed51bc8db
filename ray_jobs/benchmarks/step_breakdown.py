"""Where one training step's time goes, and what each step optimisation buys, in one process.

`python -m ray_jobs.benchmark` measures the whole path (Ray Data -> Ray Train -> DMP) and is
noisy by nature: read tasks, prefetch threads and workers share the cores. This benchmark takes
Ray out and times the sharded step itself, so that optimisations of the step can be compared
side by side (interleaved rounds over the same collated batches, median per round, median of
rounds):

- phases of the current step: collate, forward, backward (with the fused embedding update),
  dense optimizer;
- variants: the step before each optimisation and with it, one at a time and together;
- floors: the dense architecture alone (forward, backward, optimizer on pooled embeddings held
  fixed), and its matmuls at the measured matmul peak. No embedding path can make a step
  faster than the dense floor, so `reference step / dense floor` bounds any speed-up over the
  plain-PyTorch reference at this thread count;
- the plain-PyTorch reference (`benchmarks/reference.py`) on the same rows.

    python -m ray_jobs.benchmarks.step_breakdown --data data/benchmark/items_100000 --arch sharedbottom
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.distributed as dist

from modules.batch import Batch
from modules.model import SeesawModel, embedding_tables, multitask_loss
from modules.spec import DatasetSpec
from ray_jobs.benchmarks.end_to_end import THREADS, dense_flops_per_sample
from ray_jobs.benchmarks.hardware import matmul_peak_flops
from ray_jobs.benchmarks.reference import run_reference
from ray_jobs.core.log import logger
from ray_jobs.data.collate import Collator
from ray_jobs.data.dataset import split_files
from ray_jobs.training.lockstep import lockstep
from sharding.optim import OptimConfig, combined_optimizer
from sharding.parallel import shard_model
from sharding.planner import make_topology, plan_sharding


@dataclass(frozen=True)
class StepVariant:
    """One way to build the sharded step: each flag undoes one optimisation when False."""

    name: str
    fused_adam: bool = True  # OptimConfig.dense_fused
    unreplicated_dense: bool = True  # no DDP wrapper in a group of one (sharding.parallel)
    lockstep_collective: bool = False  # the per-step all-reduce lockstep ran before it skipped groups of one


VARIANTS = (
    StepVariant("before", fused_adam=False, unreplicated_dense=False, lockstep_collective=True),
    StepVariant("+ fused Adam only", unreplicated_dense=False, lockstep_collective=True),
    StepVariant("+ no DDP only", fused_adam=False, lockstep_collective=True),
    StepVariant("+ no lockstep collective only", fused_adam=False, unreplicated_dense=False),
    StepVariant("now (all three)"),
)


def _single_process_group() -> None:
    if not dist.is_initialized():
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(29400 + os.getpid() % 1000))
        dist.init_process_group("gloo", rank=0, world_size=1)


def build_step(spec: DatasetSpec, arch: str, batch_size: int, variant: StepVariant, optim: OptimConfig = OptimConfig()):
    """(model, DMP-wrapped model, optimizer) of a 1-rank CPU group, as the train loop builds them."""
    torch.manual_seed(0)
    model = SeesawModel(spec, arch, device="meta")
    plan = plan_sharding(model, embedding_tables(spec, model.table_sets), make_topology(1, "cpu"), batch_size)
    optim = replace(optim, dense_fused=variant.fused_adam)
    sharded = shard_model(model, plan, torch.device("cpu"), optim, replicate_dense=not variant.unreplicated_dense)
    return model, sharded, combined_optimizer(sharded, optim)


def _old_lockstep() -> None:
    """What lockstep did per batch in every group before it skipped groups of one."""
    flag = torch.tensor([1], dtype=torch.int32)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    flag.item()


def _phase_times(sharded: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: list[Batch],
                 lockstep_collective: bool = False) -> dict[str, float]:
    """Median ms per phase of the step over `batches` (the first quarter is warm-up)."""
    times: dict[str, list[float]] = {"lockstep": [], "forward": [], "backward": [], "optimizer": []}
    for batch in batches:
        t0 = time.perf_counter()
        for _ in lockstep([batch]):
            if lockstep_collective:
                _old_lockstep()
        t1 = time.perf_counter()
        loss, _ = sharded(batch)
        t2 = time.perf_counter()
        optimizer.zero_grad()
        loss.backward()
        t3 = time.perf_counter()
        optimizer.step()
        t4 = time.perf_counter()
        for name, seconds in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            times[name].append(seconds)
    warm = len(batches) // 4
    return {name: float(np.median(v[warm:]) * 1e3) for name, v in times.items()}


def _step_ms(sharded: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: list[Batch],
             variant: StepVariant) -> float:
    """Median ms of a whole train step over `batches` (the first quarter is warm-up)."""
    return sum(_phase_times(sharded, optimizer, batches, variant.lockstep_collective).values())


def dense_floor_ms(model: SeesawModel, batches: list[Batch], optim: OptimConfig = OptimConfig(),
                   compiled: bool = False) -> float:
    """Median ms of the dense architecture's forward, backward and fused Adam step alone, on
    pooled embeddings computed once (they still take gradients, as in a real step);
    `compiled`: the architecture under torch.compile (compilation happens in the warm-up)."""
    torch.manual_seed(0)
    dense_arch = type(model.dense_arch)(model.spec, model.dense_arch.config)
    optimizer = torch.optim.Adam(dense_arch.parameters(), lr=optim.dense_lr, fused=True)
    forward = torch.compile(dense_arch) if compiled else dense_arch
    pooled = [{k: torch.randn(b.labels.shape[0], model.spec.feature(src).embedding_dim)
               for k, src in model.kjt_keys} for b in batches]
    times = []
    for batch, embeddings in zip(batches, pooled):
        t0 = time.perf_counter()
        out = forward({k: v.requires_grad_() for k, v in embeddings.items()}, batch.dense, batch.domain)
        loss, _ = multitask_loss(out, batch.labels, batch.weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times[len(times) // 4:]) * 1e3)


def _collate_ms(collate: Callable[[pa.Table], Batch], slices: list[pa.Table]) -> float:
    times = []
    for piece in slices:
        t0 = time.perf_counter()
        collate(piece)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def breakdown(root: Path, arch: str, batch_size: int, steps: int, rounds: int,
              compile_dense: bool = False) -> dict[str, Any]:
    """Every measurement of the module doc for one data set and architecture."""
    _single_process_group()
    torch.set_num_threads(THREADS)
    spec = DatasetSpec.load(root)
    table = pq.read_table(split_files(root, "train"), columns=list(spec.required_columns()))
    slices = [table.slice(i * batch_size, batch_size) for i in range(steps)]
    built = {v.name: (v, *build_step(spec, arch, batch_size, v)) for v in VARIANTS}
    _, model, sharded, optimizer = built[VARIANTS[-1].name]
    collate = Collator(spec, model.kjt_keys)
    batches = [collate(piece) for piece in slices]
    variant_ms: dict[str, list[float]] = {name: [] for name in built}
    for _ in range(rounds):  # interleaved, so drift in machine load hits every variant alike
        for name, (variant, _, step_model, step_optimizer) in built.items():
            variant_ms[name].append(_step_ms(step_model, step_optimizer, batches, variant))
    reference = run_reference(table, spec, arch, None, model.kjt_keys, batch_size, steps, steps // 4)
    floor = dense_floor_ms(model, batches)
    compiled_floor = dense_floor_ms(model, batches, compiled=True) if compile_dense else None
    flops_per_step = dense_flops_per_sample(model.dense_arch) * batch_size
    peak = matmul_peak_flops(THREADS)
    return {
        "data": str(root), "arch": arch, "batch_size": batch_size, "threads": THREADS,
        "collate_ms": _collate_ms(collate, slices),
        "phases_ms": _phase_times(sharded, optimizer, batches),
        "variants_ms": {name: float(np.median(v)) for name, v in variant_ms.items()},
        "speedup_over_before": {name: float(np.median(np.asarray(variant_ms[VARIANTS[0].name]) / np.asarray(v)))
                                for name, v in variant_ms.items()},
        "variants_ms_per_round": variant_ms,
        "reference_step_ms": reference["step_ms_p50"],
        "dense_floor_ms": floor,
        "dense_floor_compiled_ms": compiled_floor,
        "matmul_floor_ms": flops_per_step / peak * 1e3,
        "matmul_peak_flops": peak,
        "max_speedup_over_reference": reference["step_ms_p50"] / floor,
    }


def format_breakdown(r: dict[str, Any]) -> str:
    phases = r["phases_ms"]
    total = sum(phases.values())
    lines = [f"{r['arch']} on {r['data']}, batch {r['batch_size']}, {r['threads']} thread(s)",
             f"  step now: {total:.2f} ms = " + " + ".join(f"{k} {v:.2f}" for k, v in phases.items())
             + f"  (collate, in Ray Data's threads: {r['collate_ms']:.2f} ms)"]
    for name, ms in r["variants_ms"].items():
        lines.append(f"  {name:30s} {ms:7.2f} ms  (x{r['speedup_over_before'][name]:.2f} over before, paired per round)")
    lines.append(f"  reference step {r['reference_step_ms']:.2f} ms (input conversion included) | dense floor "
                 f"{r['dense_floor_ms']:.2f} ms | its matmuls at peak {r['matmul_floor_ms']:.2f} ms")
    if r["dense_floor_compiled_ms"] is not None:
        lines.append(f"  dense floor under torch.compile {r['dense_floor_compiled_ms']:.2f} ms")
    lines.append(f"  => no embedding path beats the reference by more than {r['max_speedup_over_reference']:.2f}x "
                 f"at this dense architecture and thread count")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", help="data set directory (repeatable)")
    parser.add_argument("--arch", default="sharedbottom,pepnet")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compile-dense", action="store_true", help="also time the dense floor under torch.compile")
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark"))
    args = parser.parse_args(argv)
    results = []
    for root in args.data or [Path("data/benchmark/items_100000")]:
        for arch in args.arch.split(","):
            results.append(breakdown(root, arch, args.batch_size, args.steps, args.rounds, args.compile_dense))
            print(format_breakdown(results[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"step-breakdown-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    logger.info("step_breakdown: written %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
