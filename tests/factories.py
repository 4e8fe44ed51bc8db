"""Small specs and random Arrow tables for tests."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from modules.spec import DatasetSpec, SparseFeature


def tiny_spec(num_tasks: int = 2) -> DatasetSpec:
    """Every role, one multi-hot feature, two dense features, two domains."""
    return DatasetSpec(
        sparse_features=(
            SparseFeature("user_id", 40, 8, "user"),
            SparseFeature("item_id", 60, 8, "item"),
            SparseFeature("author_id", 20, 4, "author"),
            SparseFeature("hour", 24, 4, "context"),
            SparseFeature("domain", 2, 4, "domain"),
            SparseFeature("hist", 60, 8, "user", multi_hot=True, pooling="mean"),
        ),
        dense_features=("d0", "d1"),
        tasks=tuple(f"task{i}" for i in range(num_tasks)),
        domains=("big", "small"),
    )


def random_table(spec: DatasetSpec, rows: int, seed: int = 0, max_hist: int = 4) -> pa.Table:
    """Rows that satisfy `spec`: ids in range, some empty multi-hot lists, 0/1 labels."""
    rng = np.random.default_rng(seed)
    cols: dict[str, pa.Array] = {}
    for f in spec.sparse_features:
        if f.multi_hot:
            lengths = rng.integers(0, max_hist + 1, rows)
            lengths[0] = 0  # always one empty list
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
            values = rng.integers(0, f.cardinality, offsets[-1])
            cols[f.name] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.int64()))
        else:
            cols[f.name] = pa.array(rng.integers(0, f.cardinality, rows), pa.int64())
    if spec.domain_column not in cols:
        cols[spec.domain_column] = pa.array(rng.integers(0, spec.num_domains, rows), pa.int64())
    for name in spec.dense_features:
        cols[name] = pa.array(rng.normal(size=rows).astype(np.float32))
    for task in spec.tasks:
        cols[task] = pa.array(rng.integers(0, 2, rows).astype(np.int8))
    return pa.table(cols)
