"""The drifting stream: ids come and go, raw 64-bit ids validate only where they are bounded."""

from __future__ import annotations

from dataclasses import replace

import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from modules.collision import BoundedFeature
from modules.spec import DatasetSpec
from modules.strict import ConfigError
from ray_jobs.core.errors import DataError
from ray_jobs.core.config import JobConfig
from ray_jobs.data.drift import PRESETS, generate, stream_stats
from ray_jobs.training.passes import day_partitions, load_passes

BOUNDED = (BoundedFeature("item_id", rows=64), BoundedFeature("author_id", rows=64))


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    return generate(PRESETS["tiny"], tmp_path_factory.mktemp("drift") / "tiny")


def _ids(root, day: str, column: str) -> set[int]:
    return set(pq.read_table(root / day, columns=[column]).column(column).to_pylist())


def test_item_population_drifts_with_raw_64_bit_ids(stream):
    days = day_partitions(stream)
    assert days == [f"day-{i:03d}" for i in range(PRESETS["tiny"].days)]
    items = [_ids(stream, d, "item_id") for d in days]
    everything = set().union(*items)
    for before, today in zip(items, items[1:]):
        assert today - before, "new items appear every day"
        assert before - today, "old items die every day"
    assert len(items[0] & items[-1]) < 0.3 * len(items[0]), "the first day's items are mostly gone by the last"
    assert len(everything) > 2 * max(len(i) for i in items)
    assert min(everything) >= 0 and max(everything) > 2**60  # raw hashes, not encoded ids
    # the recorded counts and the spec agree with the files
    stats = stream_stats(stream)
    assert stats["distinct"]["item_id"] == len(everything)
    assert [d["item_id"]["distinct"] for d in stats["per_day"]] == [len(i) for i in items]
    assert DatasetSpec.load(stream).feature("item_id").cardinality == len(everything)
    users = set().union(*(_ids(stream, d, "user_id") for d in days))
    assert max(users) < PRESETS["tiny"].num_users  # users stay encoded


def test_generation_is_deterministic_and_carries_signal(stream, tmp_path):
    again = generate(PRESETS["tiny"], tmp_path / "again")
    for day in day_partitions(stream):
        assert pq.read_table(stream / day).equals(pq.read_table(again / day))
    table = pq.read_table(stream / "day-001")
    for task in PRESETS["tiny"].tasks:
        oracle = roc_auc_score(table[task].to_numpy(), table[f"prob_{task}"].to_numpy())
        assert oracle > 0.7, (task, oracle)
    other = generate(replace(PRESETS["tiny"], seed=1), tmp_path / "other")
    assert _ids(other, "day-000", "item_id") != _ids(stream, "day-000", "item_id")


def test_raw_ids_validate_only_in_bounded_columns(stream, tmp_path):
    dataset = load_passes(stream, JobConfig(collision=BOUNDED))
    assert list(dataset.splits) == day_partitions(stream)
    assert dataset.splits["day-000"].rows == PRESETS["tiny"].rows_per_day
    with pytest.raises(DataError, match=r"column 'item_id' has value \d+ outside .*collision"):
        load_passes(stream, JobConfig())
    with pytest.raises(DataError, match="column 'author_id'"):
        load_passes(stream, JobConfig(collision=BOUNDED[:1]))
    with pytest.raises(ConfigError, match="not sparse features"):
        load_passes(stream, JobConfig(collision=(BoundedFeature("item", rows=8),)))
    # an encoded column keeps its range check next to bounded ones, naming file, column and value
    table = pq.read_table(stream / "day-000")
    bad = tmp_path / "bad"
    (bad / "day-000").mkdir(parents=True)
    DatasetSpec.load(stream).save(bad)
    users = table["user_id"].to_numpy().copy()
    users[3] = 10**12
    pq.write_table(table.set_column(table.schema.get_field_index("user_id"), "user_id", [users]),
                   bad / "day-000" / "part-00000.parquet")
    with pytest.raises(DataError, match=r"part-00000.parquet: column 'user_id' has value 1000000000000 outside"):
        load_passes(bad, JobConfig(collision=BOUNDED))
    with pytest.raises(ConfigError, match="listed twice"):
        load_passes(stream, JobConfig(collision=(BOUNDED[0], BOUNDED[0])))
    empty = tmp_path / "empty"
    empty.mkdir()
    DatasetSpec.load(stream).save(empty)
    with pytest.raises(DataError, match="no day folders"):
        load_passes(empty, JobConfig(collision=BOUNDED))
