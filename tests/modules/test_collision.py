"""Bounded tables: eviction per policy, admission threshold, the memory bound."""

from __future__ import annotations

import pytest
import torch
from torchrec.modules.embedding_configs import EmbeddingBagConfig
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from modules.collision import BoundedFeature, Remapper
from modules.strict import ConfigError


def remapper(*features: BoundedFeature) -> Remapper:
    tables = [EmbeddingBagConfig(name=f"t_{f.key}", num_embeddings=f.rows, embedding_dim=2, feature_names=[f.key])
              for f in features]
    return Remapper(list(features), tables)


def one_hot(ids: list[int], key: str = "f") -> KeyedJaggedTensor:
    return KeyedJaggedTensor(keys=[key], values=torch.tensor(ids, dtype=torch.int64),
                             lengths=torch.ones(len(ids), dtype=torch.int32))


def owners(r: Remapper, candidates: list[int], key: str = "f") -> dict[int, int]:
    """Raw id -> row for the candidates that own a row (a lookup: no state change)."""
    r.eval()
    rows = r(one_hot(candidates, key)).features.values().tolist()
    r.train()
    default = r.features[key].default_row
    return {i: row for i, row in zip(candidates, rows) if row != default}


# rows=4: three owned rows + the default row 3; eviction every batch.
# LFU: cumulative counts after each batch; the 3 highest survive, ties go to the resident.
#   [1,1,1,2,2,3] -> 1:3 2:2 3:1;  [4,4] -> 4:2 beats 3:1;  [3,3,3,4] -> 3 re-enters with 3, 4:3, 2:2 is lowest.
LFU_STREAM = ([1, 1, 1, 2, 2, 3], [4, 4], [3, 3, 3, 4])
LFU_SURVIVORS = ({1, 2, 3}, {1, 2, 4}, {1, 3, 4})
# LRU: last batch seen; the oldest goes.  t1 [1,2]; t2 [3]; t3 [1]; t4 [4]: 2 (t1) goes;
#   t5 [2,2,2,2]: 3 (t2) goes, however often 2 was seen.
LRU_STREAM = ([1, 2], [3], [1], [4], [2, 2, 2, 2])
LRU_SURVIVORS = ({1, 2}, {1, 2, 3}, {1, 2, 3}, {1, 3, 4}, {1, 2, 4})
# feature_score = count / (t - last + 1):  t4 [4,4]: 1: 6/4, 2: 2/3, 3: 1/2, 4: 2/1 -> 3 goes;
#   t5 [5]: 1: 6/5, 2: 2/4, 4: 2/2, 5: 1/1 -> 2 goes (LFU would keep 2 and reject 5, LRU would drop 1).
SCORE_STREAM = ([1] * 6, [2, 2], [3], [4, 4], [5])
SCORE_SURVIVORS = ({1}, {1, 2}, {1, 2, 3}, {1, 2, 4}, {1, 4, 5})


@pytest.mark.parametrize("policy, stream, survivors", [
    ("lfu", LFU_STREAM, LFU_SURVIVORS),
    ("lru", LRU_STREAM, LRU_SURVIVORS),
    ("feature_score", SCORE_STREAM, SCORE_SURVIVORS),
])
def test_eviction_keeps_the_policys_best_ids(policy, stream, survivors):
    r = remapper(BoundedFeature("f", rows=4, policy=policy))
    seen: set[int] = set()
    previous: dict[int, int] = {}
    for batch, expected in zip(stream, survivors):
        out = r(one_hot(batch))
        seen |= set(batch)
        now = owners(r, sorted(seen))
        assert set(now) == expected
        assert sorted(now.values()) == sorted(set(now.values())), "two ids share a row"
        assert all(0 <= row < 3 for row in now.values())
        # the reported reassigned rows are exactly the rows whose owner changed
        changed = {row for i, row in now.items() if previous.get(i) != row}
        assert set(out.reassigned["f"].tolist()) == changed
        # ids in the batch read their own row in the very batch that admitted them
        assert out.features.values().tolist() == [now.get(i, 3) for i in batch]
        previous = now
    stats = r.stats()["f"]
    assert stats.rows_in_use == 3
    assert stats.evictions == 2
    assert stats.admission_rejections == 0


def test_admission_threshold():
    r = remapper(BoundedFeature("f", rows=8, policy="lru", admission_threshold=3))
    default = 7
    assert r(one_hot([7, 9])).features.values().tolist() == [default, default]  # 7 seen once
    assert r(one_hot([7])).features.values().tolist() == [default]  # twice: N - 1
    third = r(one_hot([7])).features.values().tolist()  # N-th time: its own row, at once
    assert third[0] != default
    assert r(one_hot([11, 11, 11])).features.values().tolist()[0] not in (default, third[0])  # N in one batch
    assert owners(r, [7, 9, 11]).keys() == {7, 11}
    again = r(one_hot([7, 9])).features.values().tolist()  # admitted ids stay; 9 is at 2 now
    assert again == [third[0], default]
    stats = r.stats()["f"]
    assert stats.admission_rejections == 2 + 1 + 1
    assert stats.rows_in_use == 2


@pytest.mark.parametrize("policy", ["lfu", "lru", "feature_score"])
@pytest.mark.parametrize("threshold", [1, 2])
def test_rows_never_exceed_the_cap(policy, threshold):
    rows, distinct = 16, 160  # 10x more ids than rows
    r = remapper(BoundedFeature("f", rows=rows, policy=policy, admission_threshold=threshold,
                                eviction_interval=2, max_ids_per_batch=64))
    gen = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 2**62, (distinct,), generator=gen)  # raw 64-bit ids
    for step in range(40):
        # a drifting window of the population: ids come and go
        window = raw[(step * 3) % (distinct - 40):][:40]
        batch = window[torch.randint(0, 40, (64,), generator=gen)].tolist()
        out = r(one_hot(batch)).features.values()
        assert int(out.min()) >= 0 and int(out.max()) < rows
        stats = r.stats()["f"]
        assert stats.rows_in_use <= rows - 1
        held = owners(r, raw.tolist())
        assert len(held) == stats.rows_in_use
        assert len(set(held.values())) == len(held)
    assert stats.rows_in_use == rows - 1
    assert stats.evictions > 0
    assert (stats.admission_rejections > 0) == (threshold > 1)


def test_unbounded_keys_pass_through_and_big_batches_are_refused():
    r = remapper(BoundedFeature("f", rows=4, max_ids_per_batch=3))
    kjt = KeyedJaggedTensor(keys=["g", "f"], values=torch.tensor([10**12, 5, 10**15, 10**15]),
                            lengths=torch.tensor([1, 1, 2, 0]))
    out = r(kjt).features
    assert out.keys() == ["g", "f"]
    assert out["g"].values().tolist() == [10**12, 5]
    first, second = out["f"].values().tolist()
    assert first == second != 3  # one id, one own row
    assert out.lengths().tolist() == [1, 1, 2, 0]
    with pytest.raises(ValueError, match="max_ids_per_batch"):
        r(one_hot([1, 2, 3, 4]))
    with pytest.raises(ConfigError, match="policy"):
        BoundedFeature("f", rows=4, policy="fifo")  # type: ignore[arg-type]


def test_flush_merges_the_pending_window_and_state_dict_resumes_exactly():
    feature = BoundedFeature("f", rows=4, policy="feature_score", admission_threshold=2, eviction_interval=3)
    r = remapper(feature)
    for batch in ([1, 1, 2], [2, 3, 3]):  # a window of 3 batches, 2 of them seen: nothing merged yet
        r(one_hot(batch))
    assert owners(r, [1, 2, 3]) == {}
    reassigned = r.flush()["f"]
    held = owners(r, [1, 2, 3])
    assert held.keys() == {1, 2, 3} and set(reassigned.tolist()) == set(held.values())
    assert r.flush()["f"].numel() == 0  # nothing pending any more
    # a fresh remapper loaded from the state dict continues the stream exactly like the original
    resumed = remapper(feature)
    resumed.load_state_dict(r.state_dict())
    assert resumed.stats() == r.stats()
    for batch in ([4, 4, 5], [5, 6, 4], [1, 6, 6], [7, 7, 7]):
        a, b = r(one_hot(batch)), resumed(one_hot(batch))
        assert a.features.values().tolist() == b.features.values().tolist()
        assert a.reassigned["f"].tolist() == b.reassigned["f"].tolist()
    assert resumed.stats() == r.stats() and r.stats()["f"].evictions > 0


def test_raw_id_max_stays_below_the_empty_slot_marker_of_mch():
    """collision_config states RAW_ID_MAX without torch; TorchRec's MCH marks empty slots with int64 max."""
    from modules.collision_config import RAW_ID_MAX

    assert RAW_ID_MAX == torch.iinfo(torch.int64).max - 1
