"""Global remapping on 2 gloo ranks equals one remapper fed the global stream in rank order."""

from tests.distributed import run_distributed
from tests.sharding.global_remap_body import KEYS, build_remapper, remap_stream, stream, to_kjt


def test_two_ranks_match_a_single_remapper():
    world_size = 2
    results = run_distributed(remap_stream, world_size)
    reference = build_remapper()
    for t, step in enumerate(stream(world_size)):
        out = reference(to_kjt(step[0] + step[1]))  # the global batch: rank 0's samples, then rank 1's
        for rank in range(world_size):
            for key in KEYS:
                counts = [sum(len(s[key]) for s in step[r]) for r in range(world_size)]
                start = sum(counts[:rank])
                expected = out.features[key].values().tolist()[start:start + counts[rank]]
                assert results[rank]["outputs"][t][key] == expected, (t, rank, key)
            assert results[rank]["reassigned"][t] == {k: v.tolist() for k, v in out.reassigned.items()}
    state = reference.state_dict()
    assert any(k.endswith("_mch_sorted_raw_ids") for k in state)
    for rank in range(world_size):
        assert results[rank]["state"].keys() == state.keys()
        for name, tensor in state.items():
            assert results[rank]["state"][name] == tensor.tolist(), (rank, name)
        assert results[rank]["stats"] == reference.stats()
    stats = reference.stats()
    assert stats["item"].admission_rejections > 0 and stats["hist"].evictions > 0  # the stream exercises both
