"""What a Ray Train worker builds and moves: its sharded model, its data shard's batches, and
the results it carries back to the driver.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import ray.train
import torch
import torch.distributed as dist
from torchrec.distributed.model_parallel import DistributedModelParallel

from modules.batch import Batch
from modules.model import SeesawModel, embedding_tables
from modules.spec import DatasetSpec
from modules.strict import from_dict
from ray_jobs.core import console
from ray_jobs.core.config import JobConfig
from ray_jobs.core.run_dir import RESULT_FILE, run_location
from ray_jobs.core.storage import local_mirror
from ray_jobs.data.collate import Collator, FetchCollator
from sharding.planner import make_topology, plan_sharding
from sharding.parallel import shard_model
from sharding.preview import format_preview, summarize_plan


@dataclass(frozen=True)
class WorkerContext:
    """What every worker loop starts from: its job, the data set spec, rank, world size, device
    and the run directory (`<runs_dir>/<run name>`: logs, TensorBoard curves)."""

    config: JobConfig
    spec: DatasetSpec
    rank: int
    world_size: int
    device: torch.device
    run_dir: Path

    @staticmethod
    def from_loop_config(loop_config: dict[str, Any]) -> "WorkerContext":
        """Parses the JobConfig and spec that `make_trainer` put into `loop_config` as plain dicts;
        this worker's log records go to `<run dir>/logs/worker-<rank>.log` (`core.console`)."""
        config = from_dict(JobConfig, loop_config["job"])
        context = ray.train.get_context()
        # a run directory on remote storage: the node's local mirror (`core.storage.local_mirror`)
        run_dir = local_mirror(run_location(config.runs_dir, context.get_experiment_name()))
        console.log_to_file(run_dir / console.LOGS_DIR / f"worker-{context.get_world_rank()}.log")
        console.quiet_process_logging()
        device = ray.train.torch.get_device() if config.workers.use_gpu else torch.device("cpu")
        return WorkerContext(config, DatasetSpec.from_json_dict(loop_config["spec"]), context.get_world_rank(),
                             context.get_world_size(), device, run_dir)


def shard_batches(split: str, config: JobConfig, collate: Collator,
                  local_shuffle: tuple[int, int] | None = None) -> Iterator[Batch]:
    """This worker's shard of `split` as collated Batches of `batch_size` rows, fetched from Ray
    Data `batches_per_fetch` at a time (collate runs in Ray Data's prefetch threads).

    `local_shuffle`: (buffer rows, seed) of Ray Data's local shuffle buffer (`data.ingest.local_shuffle`).
    """
    shard = ray.train.get_dataset_shard(split)
    rows = config.data.batch_size
    buffer, seed = local_shuffle if local_shuffle is not None else (None, None)
    fetches = shard.iter_torch_batches(batch_size=rows * config.data.batches_per_fetch,
                                       collate_fn=FetchCollator(collate, rows),
                                       prefetch_batches=config.data.prefetch_batches,
                                       local_shuffle_buffer_size=buffer, local_shuffle_seed=seed)
    for batches in fetches:
        yield from batches


def warm_up_shards(splits: Sequence[str]) -> None:
    """Asks Ray Train for this worker's shards of `splits` ahead of their first read.

    Each split's first `get_dataset_shard` creates its split coordinator, an actor process that
    imports Ray Data (about 2 s of CPU on the 2-core machine) and runs the split's execution.
    The actor starts asynchronously and executes nothing until a worker reads, so asking one
    epoch ahead lets it start while the current epoch trains instead of when the first batch
    is wanted. Every worker calls this at the same point (the call is a barrier per split).
    """
    for split in splits:
        ray.train.get_dataset_shard(split)


def build_sharded_model(config: JobConfig, spec: DatasetSpec, device: torch.device,
                        local_world_size: int | None = None) -> tuple[SeesawModel, DistributedModelParallel, str]:
    """SeesawModel planned for the current process group and wrapped in DMP.

    `local_world_size` (ranks per node) defaults to the Ray Train worker group's.
    Returns (the unwrapped model, the DMP-wrapped one, the plan as a printable table).
    """
    model = SeesawModel(spec, config.model.arch, config.model.params, device="meta",
                        fp16_tables=config.train.fp16_tables)
    tables = embedding_tables(spec, model.table_sets, model.table_data_type)
    world_size = dist.get_world_size()
    local_world_size = local_world_size or ray.train.get_context().get_local_world_size()
    topology = make_topology(world_size, device.type, local_world_size=local_world_size)
    plan = plan_sharding(model, tables, topology, config.data.batch_size, config.sharding, pg=dist.GroupMember.WORLD)
    storage = topology.devices[0].storage
    capacity = storage.hbm if device.type == "cuda" else storage.ddr
    plan_text = format_preview(summarize_plan(plan, tables, device.type, world_size, capacity))
    return model, shard_model(model, plan, device, config.train.optim), plan_text


def worker_nodes() -> list[str]:
    """Ray node id of every rank, in rank order (collective)."""
    nodes: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(nodes, ray.get_runtime_context().get_node_id())
    return nodes


def report_result(metrics: dict[str, Any], payload: Any) -> None:
    """Reports `metrics`, with rank 0's `payload` as JSON in a small checkpoint.

    Train v2 keeps a run's results with its checkpoints, so a JSON payload (a metrics table,
    benchmark statistics) travels back to the driver this way, on one node or many.
    """
    if dist.get_rank() != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / RESULT_FILE).write_text(json.dumps(payload, default=json_default))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))


def read_result(result: ray.train.Result) -> Any:
    """Driver side of `report_result`: the payload of the run's last report."""
    if result.error:
        raise result.error
    with result.checkpoint.as_directory() as directory:
        return json.loads((Path(directory) / RESULT_FILE).read_text())


def json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")
