"""Job configuration: one frozen dataclass tree, parsed from YAML with unknown keys rejected."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar

import yaml

from modules.collision_config import BoundedFeature
from modules.dense.registry import parse_arch_config
from modules.strict import ConfigError, from_dict, read_yaml, to_dict
from sharding.config import OptimConfig, PlannerConfig


@dataclass(frozen=True)
class DataConfig:
    """Where the data set lives and how it is batched.

    Attributes:
        path: data set directory (spec.json + train/ valid/ test/ Parquet folders).
        generate: synthetic preset to build at `path` when it holds no data set (None: never).
        batch_size: per-worker batch size (rows per train step).
        batches_per_fetch: batches each Ray Data fetch holds; its ~3 ms per-fetch cost in the
            worker is then paid once per that many steps (BENCHMARKS.md).
        prefetch_batches: fetches Ray Data prepares ahead of the train loop.
        shuffle: how training rows are shuffled, anew every epoch, seeded by (train.seed, epoch)
            (`ray_jobs.data.ingest`): `full` a Ray Data random_shuffle of the whole split (a split
            above `in_memory_max_rows` falls back to `local`), `local` a randomised block order
            plus each worker's shuffle buffer of `shuffle_buffer_rows` rows, `none` file order
            (real logs are often sorted by user: `none` then trains on one user at a time).
        shuffle_buffer_rows: rows in each worker's local shuffle buffer (`local` only).
        in_memory_max_rows: splits with at most this many rows are read once per job into Ray's
            object store (Ray Data materialize), so epochs re-read no files; also the limit of
            `full` shuffle.
    """

    path: str = "data/synthetic/default"
    generate: str | None = "default"
    batch_size: int = 512
    batches_per_fetch: int = 8
    prefetch_batches: int = 2
    shuffle: Literal["none", "local", "full"] = "full"
    shuffle_buffer_rows: int = 20_000
    in_memory_max_rows: int = 5_000_000

    def __post_init__(self) -> None:
        if self.shuffle_buffer_rows < 1:
            raise ConfigError(f"data.shuffle_buffer_rows: expected >= 1, got {self.shuffle_buffer_rows}")
        if self.in_memory_max_rows < 0:
            raise ConfigError(f"data.in_memory_max_rows: expected >= 0, got {self.in_memory_max_rows}")


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "pepnet"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainConfig:
    """Training schedule.

    Attributes:
        checkpoint_every_steps: also checkpoint mid-epoch every N steps (None: epoch ends only);
            a restarted job resumes from the latest checkpoint, skipping the batches it trained.
        keep_checkpoints: how many checkpoints the run directory keeps: the best ones by
            `select_metric`, plus always the latest (a resume starts from it).
        select_metric: the validation metric that picks the epoch whose model scores the test
            split (maximised; a *logloss* metric is minimised): any `val_*` key of the epoch
            metrics, e.g. val_mean_task_auc (mean over tasks of the pooled per-task AUC),
            val_mean_task_gauc, val_mean_auc (mean over domain x task cells). `auto`:
            val_mean_task_gauc when the data set has a group (user) column, else val_mean_task_auc.
        patience: stop after this many epochs without a better `select_metric` (None: run all).
        precision: "fp32"; "bf16": the forward under CUDA bf16 autocast (the dense matmuls in
            bf16, the loss and the fp32 master weights as before); "fp16_tables": embedding
            tables stored in fp16 (half the memory and lookup bandwidth; the fused row-wise
            Adagrad keeps its fp32 state); "bf16_fp16_tables": both. CUDA workers only.
    """

    epochs: int = 2
    seed: int = 0
    log_every: int = 50
    max_steps_per_epoch: int | None = None
    checkpoint_every_steps: int | None = None
    keep_checkpoints: int = 2
    select_metric: str = "auto"
    patience: int | None = None
    optim: OptimConfig = OptimConfig()
    precision: Literal["fp32", "bf16", "fp16_tables", "bf16_fp16_tables"] = "fp32"

    @property
    def dense_autocast(self) -> bool:
        return self.precision in ("bf16", "bf16_fp16_tables")

    @property
    def fp16_tables(self) -> bool:
        return self.precision in ("fp16_tables", "bf16_fp16_tables")

    def __post_init__(self) -> None:
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"train.patience: expected >= 1 or null, got {self.patience}")
        if self.keep_checkpoints < 1:
            raise ConfigError(f"train.keep_checkpoints: expected >= 1, got {self.keep_checkpoints}")
        if self.select_metric != "auto" and not self.select_metric.startswith("val_"):
            raise ConfigError(f"train.select_metric: {self.select_metric!r} is not a validation metric "
                              "(expected 'auto' or a val_* key, e.g. val_mean_task_auc)")


@dataclass(frozen=True)
class WorkersConfig:
    """Ray Train scaling. CPU workers use gloo, GPU workers NCCL.

    `num_workers`: a count (a fixed-size group: a lost worker restarts the group at that size,
    waiting for the capacity to return) or a range `[min, max]` (elastic, Ray Train v2's
    `ScalingConfig(num_workers=(min, max))`: the group starts with as many workers as the
    cluster has room for, up to max; after a lost worker or node it restarts on what is left if
    that is at least min, and resumes from the latest checkpoint on the new world size,
    `training.elastic`). `max_failures` still bounds those restarts. `resize_interval_s`
    (elastic only): how often a healthy group checks whether more workers fit (Ray's
    `elastic_resize_monitor_interval_s`); when they do, the group is restarted larger from the
    latest checkpoint, losing the steps since it.
    `cpus_per_worker` below 1 on a small machine leaves CPU to Ray Data's read tasks;
    `placement_strategy` SPREAD puts workers on distinct nodes where it can.
    """

    num_workers: int | tuple[int, ...] = 2
    use_gpu: bool = False
    cpus_per_worker: float = 0.5
    max_failures: int = 0
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    resize_interval_s: float = 60.0

    def __post_init__(self) -> None:
        counts = self.num_workers if isinstance(self.num_workers, tuple) else (self.num_workers,)
        if len(counts) not in (1, 2) or (len(counts) == 1 and isinstance(self.num_workers, tuple)):
            raise ConfigError(f"workers.num_workers: expected a count or [min, max], got {list(counts)}")
        if min(counts) < 1:
            raise ConfigError(f"workers.num_workers: every count must be >= 1, got {self.num_workers!r}")
        if counts[0] > counts[-1]:
            raise ConfigError(f"workers.num_workers: [min, max] with min {counts[0]} > max {counts[-1]}")
        if self.resize_interval_s < 0:
            raise ConfigError(f"workers.resize_interval_s: expected >= 0, got {self.resize_interval_s}")

    @property
    def elastic(self) -> bool:
        """Whether the group size is a range (`num_workers: [min, max]`)."""
        return isinstance(self.num_workers, tuple)

    @property
    def min_workers(self) -> int:
        return self.num_workers[0] if isinstance(self.num_workers, tuple) else self.num_workers

    @property
    def max_workers(self) -> int:
        """The most workers the job runs (what a cluster or a Tune trial must have room for)."""
        return self.num_workers[-1] if isinstance(self.num_workers, tuple) else self.num_workers


@dataclass(frozen=True)
class JobConfig:
    """One job. `collision` lists the sparse columns holding raw 64-bit ids, each remapped into
    a bounded table (`modules.collision.BoundedFeature`, key = column name); only pass-by-pass
    training (`ray_jobs.training.passes`) reads them so far."""

    name: str = "default"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    workers: WorkersConfig = WorkersConfig()
    sharding: PlannerConfig = PlannerConfig()
    runs_dir: str = "runs"
    collision: tuple[BoundedFeature, ...] = ()

    def __post_init__(self) -> None:
        if self.train.precision != "fp32" and not self.workers.use_gpu:
            raise ConfigError(f"train.precision {self.train.precision!r} needs CUDA workers (workers.use_gpu: true): "
                              "CPU workers train in fp32 (bf16 autocast and FBGEMM's fp16 tables are CUDA paths here)")


C = TypeVar("C")
MODEL_PARAMS = "model.params"  # JobConfig's one free-form mapping; the arch's own Config checks its keys


def with_overrides(config: C, overrides: Mapping[str, Any], where: str = "override",
                   free_form: tuple[str, ...] = ()) -> C:
    """The one override helper: `config` (any strict config dataclass) with each dotted path
    (e.g. "train.optim.dense_lr") set to its value.

    Strict like a YAML config: a path that names no field, or a value of the wrong type or
    range, raises ConfigError naming `where`. Keys below a `free_form` path (e.g. model.params)
    are not checked here.
    """
    tree = to_dict(config)
    for path, value in overrides.items():
        *parents, leaf = path.split(".")
        node = tree
        for depth, key in enumerate(parents):
            node = node.get(key)
            if not isinstance(node, dict):
                raise ConfigError(f"{where}: {path!r}: {'.'.join(parents[:depth + 1])} is not a config section")
        if leaf not in node and ".".join(parents) not in free_form:
            raise ConfigError(f"{where}: {path!r}: unknown key {leaf!r}; valid keys are {sorted(node)}")
        node[leaf] = value
    return from_dict(type(config), tree, where=where)


def apply_overrides(base: JobConfig, overrides: Mapping[str, Any], where: str = "override") -> JobConfig:
    """`with_overrides` for a JobConfig, whose model params are then checked by the arch's Config.

    Setting `model.arch` to another model resets `model.params` (they belong to the old one)
    unless the same overrides set params too.
    """
    overrides = dict(overrides)
    arch = overrides.get("model.arch")
    if arch is not None and arch != base.model.arch and not any(k.startswith(MODEL_PARAMS) for k in overrides):
        overrides[MODEL_PARAMS] = {}
    config = with_overrides(base, overrides, where, free_form=(MODEL_PARAMS,))
    parse_arch_config(config.model.arch, config.model.params)
    return config


def load_config(path: str | Path | None) -> JobConfig:
    """Parses a YAML job config (safe loader); None gives the embedded default."""
    if path is None:
        return JobConfig()
    return from_dict(JobConfig, read_yaml(path), where=str(path))


def dump_config(config: JobConfig) -> str:
    """YAML text that `load_config` parses back to an equal config."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)
