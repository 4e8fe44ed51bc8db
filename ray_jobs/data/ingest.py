"""Ray Data ingest: the streams of each split a TorchTrainer hands to its workers.

Training rows are shuffled anew every epoch, deterministically from (train.seed, epoch), so
that a run is reproducible and a resumed run trains on exactly the batches an uninterrupted
one does (`data.shuffle`):

- `full`: `random_shuffle` of the whole split before it is streamed to the workers;
- `local`: `randomize_block_order` plus a shuffle buffer in each worker
  (`iter_torch_batches(local_shuffle_buffer_size=..., local_shuffle_seed=...)`);
- `none`: file order.

Why one Ray dataset per epoch ("train_epoch<k>") rather than one dataset whose seed changes
per execution: Ray Data can reseed per execution (`RandomSeedConfig(seed,
reseed_after_execution=True)` mixes in `DataContext._execution_idx`, which the split
coordinator bumps after each epoch), but a worker group restarted by Ray Train builds a new
`streaming_split` whose execution index starts at 0 again, so a run resumed in epoch 3 would
replay epoch 1's order. A dataset per epoch with a fixed seed has the same order in every
attempt. Ray Train splits a dataset lazily, on a worker's first `get_dataset_shard`, so each
costs one idle split coordinator actor (0 CPU) from the epoch before its own on (the loop asks
for the next epoch's shard ahead, `training.worker.warm_up_shards`, so that the actor's start
does not delay the epoch's first batch).

Splits of at most `data.in_memory_max_rows` rows are read once per job into Ray's object
store (`materialize`): validation and test are then not re-read from Parquet every epoch,
and a full shuffle reshuffles blocks in memory instead of re-reading the files.

Evaluation splits are split across workers with `equal=False` (`SeesawIngest`): Ray Train's
default `equal=True` drops up to world_size - 1 rows to make the shards equal; unequal
shards are kept in step by lockstep's zero-weight padding (`training.lockstep`), so every
validation/test row is scored exactly once on any worker count.
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np
import ray.data
import ray.train
from ray.data import ExecutionOptions

from ray_jobs.core.config import JobConfig
from ray_jobs.core.log import logger
from ray_jobs.core.storage import arrow_paths
from ray_jobs.data.dataset import SPLITS, Dataset

TRAIN = "train"
EPOCH_SPLIT_PREFIX = "train_epoch"
ShuffleMode = Literal["none", "local", "full"]


def epoch_seed(seed: int, epoch: int, *more: int) -> int:
    """A 32-bit seed mixed from (seed, epoch, *more) (NumPy's SeedSequence: no collisions
    between neighbouring seeds/epochs as with seed + epoch)."""
    # the trailing count keeps (s, e) and (s, e, 0) apart (SeedSequence ignores trailing zeros)
    return int(np.random.SeedSequence([seed, epoch, *more, len(more) + 1]).generate_state(1)[0])


def shuffle_mode(config: JobConfig, train_rows: int) -> ShuffleMode:
    """The shuffle a training job uses: `full` only for splits that fit `in_memory_max_rows`."""
    mode = config.data.shuffle
    if mode == "full" and train_rows > config.data.in_memory_max_rows:
        return "local"
    return mode


def train_split(config: JobConfig, epoch: int) -> str:
    """Name of the dataset epoch `epoch` (0-based) trains on."""
    return TRAIN if config.data.shuffle == "none" else f"{EPOCH_SPLIT_PREFIX}{epoch}"


def local_shuffle(config: JobConfig, train_rows: int, epoch: int, rank: int) -> tuple[int, int] | None:
    """(buffer rows, seed) of this worker's local shuffle buffer in `epoch`; None without one."""
    if shuffle_mode(config, train_rows) != "local":
        return None
    return config.data.shuffle_buffer_rows, epoch_seed(config.train.seed, epoch, rank)


ROWS_PER_BLOCK = 4096  # a split's block count is rows / this (at least one per file), whatever the cluster
# A fully shuffled training split is read in larger blocks: `random_shuffle` is an all-to-all
# whose tasks and object refs grow with blocks^2, and it must finish before an epoch's first
# batch. On 2 cores, 320k rows in 80 blocks took 7-8 s per epoch, in 10 blocks ~1.5 s, against
# ~1.1 s for an unshuffled epoch (`python -m ray_jobs.benchmarks.shuffle_cost`, BENCHMARKS.md).
SHUFFLE_ROWS_PER_BLOCK = 32_768


def block_rows(config: JobConfig, train_rows: int) -> int:
    """Rows per block of the training split's epoch datasets (the unit an elastic resume's
    position is exact to, `training.elastic.mapped_skip`)."""
    return SHUFFLE_ROWS_PER_BLOCK if shuffle_mode(config, train_rows) == "full" else ROWS_PER_BLOCK


def read_parquet(files: list[str], columns: list[str], rows: int | None = None,
                 rows_per_block: int = ROWS_PER_BLOCK) -> ray.data.Dataset:
    """`ray.data.read_parquet` of `columns` through Ray Data's V1 Parquet reader (`files`: plain
    paths or URIs of one storage, `core.storage.arrow_paths`); given the split's `rows`, in a
    block count fixed by the data alone (`rows_per_block`).

    Why a fixed block count: the V1 reader otherwise picks it from the CPUs the cluster has
    free when the read is planned, and the seeded shuffles (`random_shuffle`,
    `randomize_block_order`) permute blocks, so a job restarted on a cluster of another size,
    or a busier one, would train on other batches and resume inexactly.

    Why not the default (V2) reader of Ray 2.60: it provisions a pool of 32 `FooterReader`
    actors (each a new Python process) for every read, to read the files' footers. On the
    2-core machine a 2,000- or 16,000-row, 2-file split then takes ~6-7 s per read against
    under 1 s with this reader (`python -m ray_jobs.benchmarks.parquet_reader`, BENCHMARKS.md),
    and Tune trials reading at once start dozens of such processes that starve one another.
    Our splits are few local or shared files, where V2's
    parallel footer reads buy nothing. The flag is per process: it is set where the read is
    planned, on whichever node that is.
    """
    ray.data.DataContext.get_current().use_datasource_v2 = False
    blocks = None if rows is None else max(len(files), -(-rows // rows_per_block))
    filesystem, paths = arrow_paths(files)  # URIs: their filesystem, handed to every read task
    return ray.data.read_parquet(paths, columns=columns, override_num_blocks=blocks, filesystem=filesystem)


def _read(dataset: Dataset, split: str, max_rows: int, rows_per_block: int = ROWS_PER_BLOCK) -> ray.data.Dataset:
    ds = read_parquet(list(dataset.splits[split].files), columns=list(dataset.spec.required_columns()),
                      rows=dataset.splits[split].rows, rows_per_block=rows_per_block)
    ds.context.execution_options.preserve_order = True  # file order, whatever the read tasks' timing
    if dataset.splits[split].rows <= max_rows:
        ds = ds.materialize()  # read once per job; epochs iterate the blocks in the object store
    return ds


def ray_datasets(dataset: Dataset, splits: tuple[str, ...] = SPLITS, config: JobConfig | None = None,
                 epochs: int = 0) -> dict[str, ray.data.Dataset]:
    """Ray Data streams of the needed columns only, one per split; with `epochs` > 0 (a
    training job) and shuffle on, also one shuffled training dataset per epoch (`train_split`).

    Ray Data's own progress bars are off: the train loop prints rank-0 progress lines, and
    per-operator bars from every worker would drown them.
    """
    ray.data.DataContext.get_current().enable_progress_bars = False
    max_rows = config.data.in_memory_max_rows if config is not None else 0
    training = config is not None and epochs > 0 and TRAIN in dataset.splits
    train_blocks = block_rows(config, dataset.splits[TRAIN].rows) if training else ROWS_PER_BLOCK
    out = {s: _read(dataset, s, max_rows, train_blocks if s == TRAIN else ROWS_PER_BLOCK) for s in splits}
    if config is None or epochs <= 0 or TRAIN not in out or config.data.shuffle == "none":
        return out
    mode = shuffle_mode(config, dataset.splits[TRAIN].rows)
    if mode != config.data.shuffle:
        logger.info("train split has %d rows > data.in_memory_max_rows %d: shuffle %s instead of %s",
                    dataset.splits[TRAIN].rows, max_rows, mode, config.data.shuffle)
    for epoch in range(epochs):
        seed = epoch_seed(config.train.seed, epoch)
        base = out[TRAIN]
        out[train_split(config, epoch)] = (base.random_shuffle(seed=seed) if mode == "full"
                                           else base.randomize_block_order(seed=seed))
    return out


def is_training_split(name: str) -> bool:
    return name == TRAIN or name.startswith(EPOCH_SPLIT_PREFIX)


class SeesawIngest(ray.train.DataConfig):
    """Ray Train ingest: every dataset split across the workers in Ray Data's block order
    (preserve_order: every run over the same files feeds each worker the same batches, so a
    resumed run skips exactly the batches it trained on); `equal(name)` says which datasets are
    split into equal-sized shards (training, where lockstep stops at the shortest shard
    anyway) and which keep every row (`equal=False`: evaluation).

    A group of one worker reads each dataset whole, through Ray Data's own iterator
    (`Dataset.iterator()`, Ray Train's path for unsplit datasets): the same rows in the same
    order, executed in the worker, without the split coordinator, an actor process per dataset
    that imports Ray Data (about 2 s of CPU on the 2-core machine) before its first block (issue 19)."""

    def __init__(self, equal: Callable[[str], bool] = is_training_split) -> None:
        super().__init__(execution_options=ExecutionOptions(preserve_order=True))
        self._equal = equal

    def configure(self, datasets, world_size, worker_handles, worker_node_ids, **kwargs):  # noqa: ANN001
        """`ray.train.DataConfig.configure` with `equal` chosen per dataset."""
        output: list[dict] = [{} for _ in range(world_size)]
        locality_hints = worker_node_ids if self._enable_shard_locality else None
        for name, ds in datasets.items():
            if ds.name is None:
                ds.set_name(name)
            ds = ds.copy(ds)
            ds.context.execution_options = self._resolve_execution_options(name)
            if world_size == 1:
                output[0][name] = ds.iterator()
                continue
            shards = ds.streaming_split(world_size, equal=self._equal(name), locality_hints=locality_hints)
            for rank, shard in enumerate(shards):
                output[rank][name] = shard
        return output


def training_ingest() -> SeesawIngest:
    """Training splits equal-sized, evaluation splits keep every row."""
    return SeesawIngest()


def evaluation_ingest() -> SeesawIngest:
    """Every split keeps every row (scoring a checkpoint, on any split, train included)."""
    return SeesawIngest(equal=lambda name: False)


def ordered_ingest() -> SeesawIngest:
    """Every split equal-sized and in block order (pass-by-pass training, where each day is
    scored and then trained on from the same shard)."""
    return SeesawIngest(equal=lambda name: True)
