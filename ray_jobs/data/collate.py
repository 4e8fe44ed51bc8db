"""Arrow record batch -> `Batch`, vectorised (no per-row Python).

Each sparse column becomes (lengths, values) once; a key that reads the same column again
(STEM's task-specific tables, single-task sets) reuses those arrays. Nothing is checked here:
every file was validated once on load (ids, domains and labels in range, labels in {0, 1},
no null, NaN or inf; see `ray_jobs.data.validate_file`), so the hot path only converts.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from ray.data.collate_fn import ArrowBatchCollateFn
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from modules.batch import Batch
from modules.spec import DatasetSpec


def _column(table: pa.Table, name: str) -> pa.Array:
    col = table.column(name)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _jagged(column: pa.Array, multi_hot: bool) -> tuple[np.ndarray, np.ndarray]:
    """(lengths [B] int32, values [sum(lengths)] int64) of one sparse column."""
    if not multi_hot:
        return np.ones(len(column), dtype=np.int32), column.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    values = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    return lengths, values


def _int64_tensor(table: pa.Table, name: str) -> torch.Tensor:
    """[B] int64 copy of a scalar integer column (Arrow buffers are read-only)."""
    return torch.from_numpy(np.array(_column(table, name).to_numpy(zero_copy_only=False), dtype=np.int64))


def _float_matrix(table: pa.Table, names: tuple[str, ...]) -> np.ndarray:
    """[B, len(names)] float32."""
    out = np.empty((table.num_rows, len(names)), dtype=np.float32)
    for j, name in enumerate(names):
        out[:, j] = _column(table, name).to_numpy(zero_copy_only=False)
    return out


def flat_features(table: pa.Table, spec: DatasetSpec, sources: list[str]) -> tuple[torch.Tensor, ...]:
    """The model's inputs as flat tensors (an exported program's inputs, `ray_jobs.serving`):
    values [N] int64 (key-major), lengths [K, B] int32, dense [B, F] float32, domain [B] int64,
    for K keys reading the columns `sources`. Needs no label, group or id column."""
    multi_hot = {f.name: f.multi_hot for f in spec.sparse_features}
    jagged = {name: _jagged(_column(table, name), multi_hot[name]) for name in dict.fromkeys(sources)}
    lengths = np.stack([jagged[s][0] for s in sources]) if sources else np.zeros((0, table.num_rows), np.int32)
    values = np.concatenate([jagged[s][1] for s in sources])
    return (torch.from_numpy(values), torch.from_numpy(lengths),
            torch.from_numpy(_float_matrix(table, spec.dense_features)), _int64_tensor(table, spec.domain_column))


class Collator(ArrowBatchCollateFn):
    """Builds `Batch`es for a model whose KJT keys are `kjt_keys` ((key, source column) pairs).

    An ArrowBatchCollateFn, so Ray Data runs it in its prefetch threads, overlapped with the
    train step (Arrow and NumPy release the GIL for the heavy lifting).
    """

    def __init__(self, spec: DatasetSpec, kjt_keys: tuple[tuple[str, str], ...]) -> None:
        self.spec = spec
        self.keys = [key for key, _ in kjt_keys]
        self.sources = [source for _, source in kjt_keys]
        self.multi_hot = {f.name: f.multi_hot for f in spec.sparse_features}

    def __call__(self, table: pa.Table | pa.RecordBatch) -> Batch:
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        jagged = {name: _jagged(_column(table, name), self.multi_hot[name]) for name in dict.fromkeys(self.sources)}
        lengths = np.concatenate([jagged[s][0] for s in self.sources])
        values = np.concatenate([jagged[s][1] for s in self.sources])
        return Batch(
            sparse=KeyedJaggedTensor(
                keys=self.keys, values=torch.from_numpy(values), lengths=torch.from_numpy(lengths)
            ),
            dense=torch.from_numpy(_float_matrix(table, self.spec.dense_features)),
            labels=torch.from_numpy(_float_matrix(table, self.spec.tasks)),
            domain=_int64_tensor(table, self.spec.domain_column),
            group=(_int64_tensor(table, self.spec.group_column) if self.spec.group_column
                   else torch.zeros(table.num_rows, dtype=torch.int64)),
            weight=torch.ones(table.num_rows, dtype=torch.float32),
            sample_id=(_int64_tensor(table, self.spec.id_column) if self.spec.id_column
                       else torch.full((table.num_rows,), -1, dtype=torch.int64)),
        )

    def padding_batch(self) -> Batch:
        """A one-row batch of weight 0: lets a worker whose shard ran out join the collectives."""
        num_keys = len(self.keys)
        return Batch(
            sparse=KeyedJaggedTensor(keys=self.keys, values=torch.zeros(num_keys, dtype=torch.int64),
                                     lengths=torch.ones(num_keys, dtype=torch.int32)),
            dense=torch.zeros(1, len(self.spec.dense_features)),
            labels=torch.zeros(1, self.spec.num_tasks),
            domain=torch.zeros(1, dtype=torch.int64),
            group=torch.zeros(1, dtype=torch.int64),
            weight=torch.zeros(1),
            sample_id=torch.full((1,), -1, dtype=torch.int64),
        )


class FetchCollator(ArrowBatchCollateFn):
    """Cuts one Ray Data fetch of several batches' rows into `batch_size`-row Batches.

    Ray Data's iterator spends about 3 ms of Python in the train worker per batch it hands out,
    whatever the batch's size (measured in BENCHMARKS.md), and that Python holds the GIL
    against the train step. Fetching k batches' rows at once pays it once per k steps. The
    batches are the same rows in the same order as k fetches of one batch would give: every
    batch has `batch_size` rows but the stream's last.
    """

    def __init__(self, collate: Collator, batch_size: int) -> None:
        self.collate = collate
        self.batch_size = batch_size

    def __call__(self, table: pa.Table | pa.RecordBatch) -> list[Batch]:
        return [self.collate(table.slice(start, self.batch_size)) for start in range(0, table.num_rows, self.batch_size)]
