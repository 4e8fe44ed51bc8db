"""Training speed, side by side with a plain-PyTorch reference (behind `python -m ray_jobs.benchmark`).

For each table size (rows of the large tables), batch size, model, worker count (and batches per
Ray Data fetch, to compare) it trains a fixed number of steps through the real path (Ray Data ->
TorchTrainer -> DMP-sharded TorchRec EBC) and reports steady-state samples/s per worker and in
total, P50/P90 step time, the input stall fraction (waiting for the input pipeline) apart from
the sync wait (waiting for the slowest worker), time to first batch, peak RSS per worker, and
the cores busy on the machine and in each worker process over the steady state. In the same run
it measures the machine's matmul peak and copy bandwidth, and trains the plain-PyTorch
reference (`benchmarks/reference.py`) on the same Parquet data held in memory right before and
right after each run, so that every ratio compares numbers taken seconds apart.

Hardware fractions (stated approximations):
- dense FLOP/s = 6 x (multiply-adds of every dense weight matrix per sample) x samples/s;
- embedding bytes/s = sum over keys of lookups/sample x (3 x dim x 4 + 8) x samples/s
  (forward row read, fused backward row read + write, row-wise Adagrad state read + write).
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
import torch.distributed as dist
from torch import nn

from modules.dense.experts import ExpertBank
from modules.dense.registry import parse_arch_config
from modules.model import SeesawModel
from modules.spec import DatasetSpec
from ray_jobs.benchmarks.hardware import CpuSnapshot, cores_busy, matmul_peak_flops, memory_bandwidth
from ray_jobs.benchmarks.reference import run_reference
from ray_jobs.core.config import DataConfig, JobConfig, ModelConfig, TrainConfig, WorkersConfig
from ray_jobs.core.log import logger
from ray_jobs.core.tables import text
from ray_jobs.data.collate import Collator
from ray_jobs.data.dataset import prepare_dataset
from ray_jobs.data.synthetic import GeneratorConfig, generate
from ray_jobs.training.epoch import EpochStats, train_epoch
from ray_jobs.training.runtime import init_ray, make_trainer
from ray_jobs.training.worker import WorkerContext, build_sharded_model, read_result, report_result, shard_batches
from sharding.optim import combined_optimizer

THREADS = 1  # per worker and for the reference: 2 cores hold 2 workers plus the input pipeline


def dense_flops_per_sample(dense_arch: nn.Module) -> float:
    """6 x multiply-adds of every dense weight matrix (forward 2, backward 4 FLOPs each)."""
    macs = sum(m.in_features * m.out_features for m in dense_arch.modules() if isinstance(m, nn.Linear))
    macs += sum(w.numel() for m in dense_arch.modules() if isinstance(m, ExpertBank) for w in m.weights)
    return 6.0 * macs


def embedding_bytes_per_sample(table: pa.Table, spec: DatasetSpec, kjt_keys: tuple[tuple[str, str], ...]) -> float:
    """Bytes the embedding lookups and their fused update touch per sample (see module doc)."""
    total = 0.0
    for _, source in kjt_keys:
        feature = spec.feature(source)
        col = table.column(source)
        lookups = pc.sum(pc.list_value_length(col)).as_py() / table.num_rows if feature.multi_hot else 1.0
        total += lookups * (3 * feature.embedding_dim * 4 + 8)
    return total


def benchmark_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train worker: train `max_steps_per_epoch` steps, gather every worker's statistics."""
    torch.set_num_threads(THREADS)
    worker = WorkerContext.from_loop_config(loop_config)
    config, spec, device = worker.config, worker.spec, worker.device
    model, sharded, _ = build_sharded_model(config, spec, device)
    optimizer = combined_optimizer(sharded, config.train.optim)
    collate = Collator(spec, model.kjt_keys)
    warmup = loop_config["warmup"]
    steady_start: list[CpuSnapshot] = []

    def on_step(stats: EpochStats) -> None:
        if stats.steps == warmup:
            steady_start.append(CpuSnapshot.take())

    stats = train_epoch(sharded, optimizer, shard_batches("train", config, collate), device,
                        config.train.max_steps_per_epoch, on_step)
    mine = stats.metrics(dist.get_world_size(), skip=warmup)
    mine.update(cores_busy(steady_start[0], CpuSnapshot.take()))
    mine["peak_device_mb"] = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    mine["dense_flops_per_sample"] = dense_flops_per_sample(model.dense_arch)
    everyone: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    report_result({}, everyone)


def bench_dataset(root: Path, table_rows: int, rows: int) -> Path:
    """A synthetic data set whose item tables (item_id, hist_items) have `table_rows` rows."""
    config = GeneratorConfig(rows=rows, num_items=table_rows, num_users=min(table_rows, 100_000),
                             num_authors=min(table_rows // 10, 100_000), files_per_split=4)
    return generate(config, root / f"items_{table_rows}")


def summarize(per_worker: list[dict], flops_peak: float, bandwidth: float, bytes_per_sample: float) -> dict[str, Any]:
    per_worker_rate = [w["train_samples_per_s_per_worker"] for w in per_worker]
    mean_rate = float(np.mean(per_worker_rate))
    return {
        "samples_per_s_total": float(np.sum(per_worker_rate)),
        "samples_per_s_per_worker": mean_rate,
        "step_ms_p50": float(np.max([w["step_ms_p50"] for w in per_worker])),
        "step_ms_p90": float(np.max([w["step_ms_p90"] for w in per_worker])),
        "input_stall": float(np.mean([w["input_wait_fraction"] for w in per_worker])),
        "sync_wait": float(np.mean([w["sync_wait_fraction"] for w in per_worker])),
        "machine_cores_busy": per_worker[0]["machine_cores_busy"],
        "worker_cores_busy": [round(w["process_cores_busy"], 2) for w in per_worker],
        "cores": per_worker[0]["cores"],
        "time_to_first_batch_s": float(np.max([w["time_to_first_batch_s"] for w in per_worker])),
        "peak_rss_mb": [round(w["peak_rss_mb"]) for w in per_worker],
        "peak_device_mb": [w["peak_device_mb"] and round(w["peak_device_mb"]) for w in per_worker],
        "dense_flops_fraction": per_worker[0]["dense_flops_per_sample"] * mean_rate / flops_peak,
        "embedding_bandwidth_fraction": bytes_per_sample * mean_rate / bandwidth,
    }


def format_rows(rows: list[dict[str, Any]]) -> str:
    """The benchmark table. `CPU ceiling` is the total samples/s this configuration's CPU cost per
    sample (machine-wide, input pipeline included) would allow with every core busy."""
    header = ["rows/table", "batch", "per fetch", "model", "workers", "samples/s total", "per worker", "ref samples/s", "ratio/ref",
              "p50 ms", "p90 ms", "stall", "sync", "1st batch s", "RSS MB", "dense %peak", "emb %bw",
              "cores busy", "worker cores", "CPU ceiling"]
    lines = []
    for r in rows:
        ceiling = r["samples_per_s_total"] * r["cores"] / max(r["machine_cores_busy"], 1e-9)
        lines.append([f"{r['table_rows']:.0e}", str(r["batch_size"]), str(r["batches_per_fetch"]), r["arch"], str(r["workers"]), f"{r['samples_per_s_total']:,.0f}",
                      f"{r['samples_per_s_per_worker']:,.0f}", f"{r['reference_samples_per_s']:,.0f}",
                      f"{r['samples_per_s_per_worker'] / r['reference_samples_per_s']:.2f}",
                      f"{r['step_ms_p50']:.1f}", f"{r['step_ms_p90']:.1f}", f"{r['input_stall']:.1%}",
                      f"{r['sync_wait']:.1%}", f"{r['time_to_first_batch_s']:.1f}", "/".join(map(str, r["peak_rss_mb"])),
                      f"{100 * r['dense_flops_fraction']:.1f}", f"{100 * r['embedding_bandwidth_fraction']:.2f}",
                      f"{r['machine_cores_busy']:.2f}/{r['cores']}", "/".join(map(str, r["worker_cores_busy"])),
                      f"{ceiling:,.0f}"])
    return text(lines, header, rule=False).rstrip("\n")


@dataclass(frozen=True)
class BenchmarkPlan:
    """The grid to measure: every combination of the lists runs once."""

    archs: tuple[str, ...] = ("sharedbottom", "pepnet")
    workers: tuple[int, ...] = (1, 2)
    table_rows: tuple[int, ...] = (100_000, 10_000_000)
    batch_sizes: tuple[int, ...] = (512, 2048)
    batches_per_fetch: tuple[int, ...] = (DataConfig.batches_per_fetch,)
    steps: int = 150
    warmup: int = 20
    gpu: bool = False
    data_root: Path = Path("data/benchmark")
    out: Path = Path("reports/benchmark")


def run_benchmark(plan: BenchmarkPlan) -> Path:
    """Measures every configuration of `plan`, prints the table, returns the JSON written."""
    for arch in plan.archs:
        parse_arch_config(arch, {})  # a typo fails before minutes of measuring
    archs, worker_counts, table_sizes = list(plan.archs), list(plan.workers), list(plan.table_rows)
    batch_sizes, fetch_sizes = list(plan.batch_sizes), list(plan.batches_per_fetch)
    device = "cuda" if plan.gpu else "cpu"
    flops_peak, bandwidth = matmul_peak_flops(THREADS, device=device), memory_bandwidth(THREADS, device=device)
    logger.info("benchmark: %s, %d thread(s): matmul peak %.1f GFLOP/s, copy bandwidth %.1f GB/s", device, THREADS,
                flops_peak / 1e9, bandwidth / 1e9)
    base = JobConfig(name="benchmark", train=TrainConfig(epochs=1, max_steps_per_epoch=plan.steps),
                     workers=WorkersConfig(num_workers=max(worker_counts), use_gpu=plan.gpu))
    init_ray(base)
    rows: list[dict[str, Any]] = []
    rows_needed = int(plan.steps * max(batch_sizes) * max(worker_counts) / 0.8 * 1.1)
    for table_rows in table_sizes:
        root = bench_dataset(plan.data_root, table_rows, rows_needed)
        dataset = prepare_dataset(replace(base, data=DataConfig(path=str(root), generate=None)))
        train_table = pq.read_table(list(dataset.splits["train"].files), columns=list(dataset.spec.required_columns()))
        for batch_size, arch in itertools.product(batch_sizes, archs):
            keys = SeesawModel(dataset.spec, arch, device="meta").kjt_keys
            bytes_per_sample = embedding_bytes_per_sample(train_table, dataset.spec, keys)

            def reference() -> dict[str, float]:
                torch.set_num_threads(THREADS)
                return run_reference(train_table, dataset.spec, arch, None, keys, batch_size, plan.steps, plan.warmup,
                                     device=device)

            for workers, per_fetch in itertools.product(worker_counts, fetch_sizes):
                data = DataConfig(path=str(root), generate=None, batch_size=batch_size, batches_per_fetch=per_fetch)
                config = replace(base, data=data, model=ModelConfig(arch=arch),
                                 workers=replace(base.workers, num_workers=workers))
                trainer = make_trainer(config, dataset, benchmark_loop_per_worker,
                                       f"bench-{arch}-{table_rows}-{batch_size}-{workers}w-{time.strftime('%H%M%S')}",
                                       extra={"warmup": plan.warmup}, splits=("train",))
                before = reference()  # the reference brackets each run: the machine's speed drifts by minutes
                per_worker = read_result(trainer.fit())
                after = reference()
                row = {"table_rows": table_rows, "batch_size": batch_size, "batches_per_fetch": per_fetch,
                       "arch": arch, "workers": workers,
                       "reference_samples_per_s": (before["samples_per_s"] + after["samples_per_s"]) / 2,
                       "reference": [before, after],
                       **summarize(per_worker, flops_peak, bandwidth, bytes_per_sample)}
                rows.append(row)
                print(format_rows([row]).splitlines()[-1], flush=True)
    plan.out.mkdir(parents=True, exist_ok=True)
    out = plan.out / f"benchmark-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"device": device, "threads": THREADS, "matmul_peak_flops": flops_peak, "copy_bandwidth": bandwidth,
                               "steps": plan.steps, "warmup": plan.warmup,
                               "rows": rows}, indent=2))
    print(format_rows(rows))
    logger.info("benchmark: written %s", out)
    return out


