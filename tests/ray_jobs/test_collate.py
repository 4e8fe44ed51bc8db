"""The collate must reproduce the input rows exactly, in KJT form."""

from dataclasses import replace

import numpy as np
import pyarrow as pa
import torch

from modules.model import SeesawModel
from ray_jobs.data.collate import Collator, FetchCollator
from tests.factories import random_table, tiny_spec


def _rows(table, name):
    return table.column(name).to_pylist()


def test_kjt_matches_rows_including_multi_hot_and_empty_lists():
    spec = tiny_spec()
    table = random_table(spec, 50, seed=3)
    model = SeesawModel(spec, "sharedbottom")
    batch = Collator(spec, model.kjt_keys)(table)
    per_key = batch.sparse.to_dict()
    assert list(per_key) == [key for key, _ in model.kjt_keys]
    for key, source in model.kjt_keys:
        expected = _rows(table, source)
        got = per_key[key].to_dense()
        expected_lists = [row if isinstance(row, list) else [row] for row in expected]
        assert [t.tolist() for t in got] == expected_lists, key
    assert any(len(r) == 0 for r in _rows(table, "hist"))
    np.testing.assert_array_equal(batch.dense.numpy(), np.stack([table.column(c).to_numpy() for c in spec.dense_features], 1))
    np.testing.assert_array_equal(batch.labels.numpy(), np.stack([table.column(t).to_numpy() for t in spec.tasks], 1))
    assert batch.domain.tolist() == _rows(table, "domain")
    assert batch.group.tolist() == _rows(table, "user_id")
    assert torch.equal(batch.weight, torch.ones(50))
    assert torch.equal(batch.sample_id, torch.full((50,), -1)), "no id column in this spec"


def test_sample_ids_come_from_the_id_column():
    spec = replace(tiny_spec(), id_column="row")
    table = random_table(spec, 30, seed=4)
    table = table.append_column("row", pa.array(np.arange(100, 130), pa.int64()))
    batch = Collator(spec, SeesawModel(spec, "sharedbottom").kjt_keys)(table.slice(5, 10))
    assert batch.sample_id.tolist() == list(range(105, 115))


def test_sliced_tables_and_repeated_sources():
    """Arrow slices carry offsets; a key that re-reads a column (task tables) gets the same rows."""
    spec = tiny_spec()
    table = random_table(spec, 40, seed=5).slice(7, 20)
    keys = (("hist", "hist"), ("hist@task0", "hist"), ("user_id@task0", "user_id"))
    batch = Collator(spec, keys)(table)
    d = batch.sparse.to_dict()
    assert [t.tolist() for t in d["hist"].to_dense()] == _rows(table, "hist")
    assert torch.equal(d["hist"].values(), d["hist@task0"].values())
    assert d["user_id@task0"].values().tolist() == _rows(table, "user_id")


def test_padding_batch_has_zero_weight_and_all_keys():
    spec = tiny_spec()
    model = SeesawModel(spec, "sharedbottom")
    pad = Collator(spec, model.kjt_keys).padding_batch()
    assert pad.size == 1 and pad.weight.item() == 0
    assert pad.sparse.keys() == [k for k, _ in model.kjt_keys]
    model.predict(pad)  # runs


def test_a_fetch_of_several_batches_splits_into_the_same_batches_as_one_at_a_time():
    """Rows 0-9, 10-19, 20-22 of a 23-row fetch: the batches one-batch fetches would give."""
    spec = tiny_spec()
    collate = Collator(spec, SeesawModel(spec, "sharedbottom").kjt_keys)
    table = random_table(spec, 23, seed=6)
    batches = FetchCollator(collate, 10)(table)
    assert [b.labels.shape[0] for b in batches] == [10, 10, 3]
    for start, batch in zip((0, 10, 20), batches):
        single = collate(table.slice(start, 10))
        assert torch.equal(batch.sparse.values(), single.sparse.values())
        assert torch.equal(batch.sparse.lengths(), single.sparse.lengths())
        for name in ("dense", "labels", "domain", "group"):
            assert torch.equal(getattr(batch, name), getattr(single, name)), name
    assert batches[2].group.tolist() == _rows(table, "user_id")[20:]

