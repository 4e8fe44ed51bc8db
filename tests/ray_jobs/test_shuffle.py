"""Training rows are shuffled every epoch, deterministically from (seed, epoch), and split into
disjoint worker shards that cover the split; evaluation shards keep every row.

These tests drive the ingest exactly as Ray Train does (`SeesawIngest.configure` gives each
rank its `streaming_split` iterator; each rank iterates it with its local shuffle buffer as
`training.worker.shard_batches` does), from the driver: no worker group is started.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pyarrow.dataset as pads
import pytest

from ray_jobs.core.config import DataConfig, JobConfig, TrainConfig
from ray_jobs.data.dataset import prepare_dataset
from ray_jobs.data.ingest import evaluation_ingest, local_shuffle, ray_datasets, train_split, training_ingest

WORKERS = 2
BATCH = 256


def _config(data, shuffle: str, seed: int = 0) -> JobConfig:
    return JobConfig(data=DataConfig(path=str(data), generate=None, batch_size=BATCH, shuffle=shuffle,
                                     shuffle_buffer_rows=2_000),
                     train=TrainConfig(epochs=2, seed=seed))


def _file_order(data, split: str = "train") -> np.ndarray:
    return pads.dataset(str(data / split)).to_table(columns=["sample_id"])["sample_id"].to_numpy()


def _positions(file_order: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Each id's row number in the split's files."""
    order = np.argsort(file_order)
    return order[np.searchsorted(file_order[order], ids)]


def _datasets(config: JobConfig, splits=("train",)) -> dict:
    dataset = prepare_dataset(config)
    return ray_datasets(dataset, splits, config, epochs=config.train.epochs)


def _epoch_ids(config: JobConfig, datasets: dict, name: str, epoch: int, ingest=None,
               workers: int = WORKERS) -> list[np.ndarray]:
    """The sample ids each rank receives of dataset `name` in `epoch`, in order."""
    iterators = (ingest or training_ingest()).configure({name: datasets[name]}, workers, None, None)
    return _iterated_ids(config, iterators, name, epoch)


def _iterated_ids(config: JobConfig, iterators: list[dict], name: str, epoch: int) -> list[np.ndarray]:
    rows = prepare_dataset(config).splits["train"].rows
    out: list[np.ndarray | None] = [None] * len(iterators)

    def consume(rank: int) -> None:
        shuffle = local_shuffle(config, rows, epoch, rank) if name != "test" else None
        buffer, seed = shuffle or (None, None)
        ids = [b["sample_id"] for b in iterators[rank][name].iter_batches(
            batch_size=BATCH, batch_format="numpy", local_shuffle_buffer_size=buffer, local_shuffle_seed=seed)]
        out[rank] = np.concatenate(ids) if ids else np.zeros(0, np.int64)  # equal=False may give a rank nothing

    threads = [threading.Thread(target=consume, args=(r,)) for r in range(len(iterators))]  # a split streams to all at once
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out  # type: ignore[return-value]


@pytest.mark.parametrize("shuffle", ["full", "local"])
def test_epochs_are_shuffled_deterministically_into_disjoint_covering_shards(ray_session, uneven_data, shuffle):
    config = _config(uneven_data, shuffle)
    file_order = _file_order(uneven_data)
    datasets = _datasets(config)
    epochs = [_epoch_ids(config, datasets, train_split(config, e), e) for e in range(2)]
    for shards in epochs:
        together = np.concatenate(shards)
        assert len(np.unique(together)) == len(together), "a row reached two workers"
        assert set(together) <= set(file_order)
        assert len(file_order) - len(together) <= WORKERS - 1, "equal-sized training shards drop < world_size rows"
        assert abs(len(shards[0]) - len(shards[1])) == 0
        for rank, ids in enumerate(shards):
            first = _positions(file_order, ids[:BATCH])
            assert (first >= 4 * BATCH).any(), f"rank {rank} starts with the file's first rows"
            assert not (np.diff(first) == 1).all(), f"rank {rank} starts with consecutive file rows"
            if shuffle == "full":  # a batch mixes rows from all over the split
                assert np.ptp(first) > len(file_order) // 2
    assert not np.array_equal(epochs[0][0], epochs[1][0]), "two epochs in the same order"
    again = _epoch_ids(config, _datasets(config), train_split(config, 0), 0)  # a new job, same seed
    for a, b in zip(epochs[0], again):
        np.testing.assert_array_equal(a, b)  # same seed and epoch: same order on every rank
    other = replace(config, train=TrainConfig(epochs=2, seed=1))
    other_seed = _epoch_ids(other, _datasets(other), train_split(config, 0), 0)
    assert not np.array_equal(epochs[0][0], other_seed[0])


def test_shuffle_none_streams_file_order(ray_session, uneven_data):
    config = _config(uneven_data, "none")
    assert train_split(config, 0) == train_split(config, 1) == "train"
    file_order = _file_order(uneven_data)
    shards = _epoch_ids(config, _datasets(config), "train", 0)
    for ids in shards:
        assert (np.diff(_positions(file_order, ids[:BATCH])) == 1).all(), "file order within a block"
    assert len(file_order) - sum(len(s) for s in shards) <= WORKERS - 1


def test_evaluation_shards_keep_every_row_of_an_odd_split(ray_session, uneven_data):
    """`equal=False`: 2 workers get every row of a test split of odd length once."""
    config = _config(uneven_data, "full")
    want = _file_order(uneven_data, "test")
    assert len(want) % WORKERS == 1
    datasets = _datasets(config, ("train", "test"))
    shards = _epoch_ids(config, datasets, "test", 0)
    np.testing.assert_array_equal(np.sort(np.concatenate(shards)), np.sort(want))
    # scoring any split, train included, keeps every row too
    train_rows = pads.dataset(str(uneven_data / "train")).count_rows()
    shards = _epoch_ids(config, datasets, "train", 0, ingest=evaluation_ingest())
    assert sum(len(s) for s in shards) == train_rows


@pytest.mark.parametrize("shuffle", ["full", "local"])
def test_one_worker_reads_each_split_whole_in_the_order_of_a_one_way_split(ray_session, uneven_data, shuffle):
    """A group of one worker gets Ray Data's plain iterator (no split coordinator actor): the
    same rows in the same order as Ray's own `streaming_split(1)` gives, every epoch and split."""
    from ray.data._internal.iterator.stream_split_iterator import StreamSplitDataIterator

    config = _config(uneven_data, shuffle)
    datasets = _datasets(config, ("train", "test"))
    for name, epoch in [(train_split(config, 0), 0), (train_split(config, 1), 1), ("test", 0)]:
        (whole,) = _epoch_ids(config, datasets, name, epoch, workers=1)
        ds = datasets[name].copy(datasets[name])
        ds.context.execution_options.preserve_order = True
        (split,) = _iterated_ids(config, [{name: it} for it in ds.streaming_split(1, equal=True)], name, epoch)
        np.testing.assert_array_equal(whole, split)
    assert len(whole) == len(_file_order(uneven_data, "test"))
    (iterators,) = training_ingest().configure({"test": datasets["test"]}, 1, None, None)
    assert not isinstance(iterators["test"], StreamSplitDataIterator)


_SHUFFLED_ORDER_ON_ANOTHER_CLUSTER = """
import sys, tempfile
import ray
from ray_jobs.data.dataset import prepare_dataset
from ray_jobs.data.ingest import ray_datasets
from tests.ray_jobs.test_shuffle import _config
ray.init(address="local", num_cpus=int(sys.argv[2]), include_dashboard=False, log_to_driver=False,
         _temp_dir=tempfile.mkdtemp(prefix="seesaw-test-", dir="/tmp"))
config = _config(sys.argv[1], "full")
ds = ray_datasets(prepare_dataset(config), ("train",), config, epochs=1)["train_epoch0"]
print(",".join(str(r["sample_id"]) for r in ds.take_all()))
"""


def test_the_shuffled_order_does_not_depend_on_the_clusters_size(ray_session, uneven_data):
    """A restarted job may land on a cluster of another size or load: its epochs must still see
    the same rows in the same order (Ray Data's reader would otherwise size the blocks, which
    the seeded shuffle permutes, from the CPUs it finds free). Here: this session's 6-CPU Ray
    against a 2-CPU Ray in another process."""
    import subprocess
    import sys

    config = _config(uneven_data, "full")
    here = ray_datasets(prepare_dataset(config), ("train",), config, epochs=1)["train_epoch0"]
    here_ids = [r["sample_id"] for r in here.take_all()]
    assert here_ids != sorted(here_ids) and len(here_ids) == len(set(here_ids))
    out = subprocess.run([sys.executable, "-c", _SHUFFLED_ORDER_ON_ANOTHER_CLUSTER, str(uneven_data), "2"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    there_ids = [int(v) for v in out.strip().splitlines()[-1].split(",")]
    assert there_ids == here_ids
