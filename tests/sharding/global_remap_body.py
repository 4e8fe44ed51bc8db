"""Per-rank body of the global-remap test, and the stream it uses (imported by spawned processes)."""

from __future__ import annotations

import torch
from torchrec.modules.embedding_configs import EmbeddingBagConfig
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from modules.collision import BoundedFeature, Remapper
from sharding.global_remap import GlobalRemapper

KEYS = ("item", "hist", "hour")  # hour is not bounded: it must pass through
FEATURES = (
    BoundedFeature("item", rows=8, policy="lfu", admission_threshold=2, eviction_interval=2, max_ids_per_batch=64),
    BoundedFeature("hist", rows=6, policy="feature_score", max_ids_per_batch=64),
)
ROWS_PER_RANK = (3, 5)  # unequal local batches exercise the padding
STEPS = 6

Sample = dict[str, list[int]]


def build_remapper() -> Remapper:
    tables = [EmbeddingBagConfig(name=f"t_{f.key}", num_embeddings=f.rows, embedding_dim=2, feature_names=[f.key])
              for f in FEATURES]
    return Remapper(list(FEATURES), tables)


def stream(world_size: int) -> list[list[list[Sample]]]:
    """stream[step][rank] = that rank's samples: raw 64-bit ids, 3x more ids than rows."""
    gen = torch.Generator().manual_seed(3)
    items = torch.randint(0, 2**62, (24,), generator=gen).tolist()
    out = []
    for _ in range(STEPS):
        step = []
        for rank in range(world_size):
            samples = []
            for _ in range(ROWS_PER_RANK[rank]):
                n_hist = int(torch.randint(0, 4, (1,), generator=gen))
                samples.append({
                    "item": [items[int(torch.randint(0, 24, (1,), generator=gen))]],
                    "hist": [items[int(i)] for i in torch.randint(0, 24, (n_hist,), generator=gen)],
                    "hour": [int(torch.randint(0, 24, (1,), generator=gen))],
                })
            step.append(samples)
        out.append(step)
    return out


def to_kjt(samples: list[Sample]) -> KeyedJaggedTensor:
    """Key-major KJT of the samples, built directly from Python lists."""
    values = [v for key in KEYS for s in samples for v in s[key]]
    lengths = [len(s[key]) for key in KEYS for s in samples]
    return KeyedJaggedTensor(keys=list(KEYS), values=torch.tensor(values, dtype=torch.int64),
                             lengths=torch.tensor(lengths, dtype=torch.int32))


def remap_stream(rank: int, world_size: int) -> dict:
    """This rank feeds only its own slice of every global batch to a GlobalRemapper."""
    remapper = GlobalRemapper(build_remapper())
    outputs, reassigned = [], []
    for step in stream(world_size):
        out = remapper(to_kjt(step[rank]))
        outputs.append({k: out.features[k].values().tolist() for k in KEYS})
        reassigned.append({k: v.tolist() for k, v in out.reassigned.items()})
        assert out.features.lengths().tolist() == to_kjt(step[rank]).lengths().tolist()
    # plain lists: tensors sent through the result queue would outlive their process
    state = {name: t.tolist() for name, t in remapper.remapper.state_dict().items()}
    return {"outputs": outputs, "reassigned": reassigned, "state": state,
            "stats": remapper.remapper.stats()}
