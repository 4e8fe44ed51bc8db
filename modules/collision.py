"""Bounded embedding tables for unbounded raw id spaces (TorchRec managed collision, MCH).

Ids of fast-churning features (items, authors) appear and expire daily; a table per raw id
would grow without bound. A `BoundedFeature` caps its table at `rows` rows: TorchRec's
`MCHManagedCollisionModule` keeps a sorted map raw id -> row for at most `rows - 1` ids and
sends every other id to one shared default row, `rows - 1`. Every `eviction_interval` batches
it merges the ids it saw into the map, and when the map is full the policy decides who stays:

- "lfu" (`LFU_EvictionPolicy`): score = count, the occurrences since the id got its row;
- "lru" (`LRU_EvictionPolicy`): score = -(t - last_seen + 1) ** decay_exponent;
- "feature_score" (`DistanceLFU_EvictionPolicy`): score = count / (t - last_seen + 1) ** decay_exponent,
  frequency discounted by how long ago the id was last seen (t counts batches).

The highest `rows - 1` scores among resident and incoming ids keep a row; ties favour the
resident id. Admission: TorchRec 1.8's only hook, `threshold_filtering_func`, filters on the
counts of one eviction window and also hides resident ids that fall below it from the policy
(an LRU id seen rarely would never refresh), so it cannot express "seen N times in total".
Seesaw puts a probation table in front instead: a second MCH module (DistanceLFU, so stale
candidates decay out) counts the occurrences of ids without a row; an id reaches the main
table only once that count is >= `admission_threshold`. Before then it reads the default row.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import torch
from torch import nn
from torchrec.modules.embedding_configs import BaseEmbeddingConfig
from torchrec.modules.mc_modules import (
    DistanceLFU_EvictionPolicy,
    LFU_EvictionPolicy,
    LRU_EvictionPolicy,
    ManagedCollisionCollection,
    MCHEvictionPolicy,
    MCHManagedCollisionModule,
)
from torchrec.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor

from modules.collision_config import POLICIES, BoundedFeature, Policy
from modules.spec import DatasetSpec
from modules.strict import ConfigError


@dataclass(frozen=True)
class CollisionStats:
    """Counters of one bounded feature.

    Attributes:
        rows_in_use: ids that own a row now (<= rows - 1).
        evictions: rows taken from one id and given to another, since construction.
        admission_rejections: occurrences sent to the default row by the admission threshold.
    """

    rows_in_use: int
    evictions: int
    admission_rejections: int


def check_features(features: Sequence[BoundedFeature], spec: DatasetSpec) -> None:
    """Every bounded column exists in `spec` and is bounded once."""
    keys = [f.key for f in features]
    unknown = sorted(set(keys) - set(spec.feature_names))
    if unknown:
        raise ConfigError(f"collision: bounded feature(s) {unknown} are not sparse features of the data set "
                          f"(it has {list(spec.feature_names)})")
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigError(f"collision: feature(s) {twice} listed twice")


def bounded_spec(spec: DatasetSpec, features: Sequence[BoundedFeature]) -> DatasetSpec:
    """`spec` with each bounded column's cardinality replaced by its row cap: the size of its tables."""
    check_features(features, spec)
    rows = {f.key: f.rows for f in features}
    return replace(spec, sparse_features=tuple(
        replace(f, cardinality=rows[f.name]) if f.name in rows else f for f in spec.sparse_features))


def for_keys(features: Sequence[BoundedFeature], kjt_keys: Sequence[tuple[str, str]]) -> list[BoundedFeature]:
    """One BoundedFeature per (KJT key, source column) whose column is bounded; each table
    reading a bounded column (e.g. STEM-Net's per-task tables) gets its own remapping state."""
    by_column = {f.key: f for f in features}
    return [replace(by_column[column], key=key) for key, column in kjt_keys if column in by_column]


def eviction_policy(name: Policy, decay_exponent: float = 1.0) -> MCHEvictionPolicy:
    """TorchRec's eviction policy for a Seesaw policy name."""
    if name == "lfu":
        return LFU_EvictionPolicy()
    if name == "lru":
        return LRU_EvictionPolicy(decay_exponent=decay_exponent)
    if name == "feature_score":
        return DistanceLFU_EvictionPolicy(decay_exponent=decay_exponent)
    raise ConfigError(f"eviction policy {name!r} is not one of {POLICIES}")


def _mch(rows: int, policy: MCHEvictionPolicy, interval: int, max_ids: int, name: str,
         device: torch.device) -> MCHManagedCollisionModule:
    module = MCHManagedCollisionModule(zch_size=rows, device=device, eviction_policy=policy,
                                       eviction_interval=interval, name=name)
    # TorchRec sizes its history buffer from the first batch it profiles (1.25 x its ids x the
    # interval) and drops later ids that overflow it; size it for the largest batch instead.
    module._init_history_buffers({name: JaggedTensor(values=torch.empty(max_ids, dtype=torch.int64, device=device),
                                                     lengths=torch.tensor([max_ids], device=device))})
    return module


def managed_collision_module(feature: BoundedFeature, table: str,
                             device: torch.device = torch.device("cpu")) -> MCHManagedCollisionModule:
    """The MCH module that remaps `feature`'s raw ids into [0, feature.rows) for `table`."""
    return _mch(feature.rows, eviction_policy(feature.policy, feature.decay_exponent), feature.eviction_interval,
                feature.max_ids_per_batch, table, device)


def probation_module(feature: BoundedFeature, device: torch.device = torch.device("cpu")) -> MCHManagedCollisionModule:
    """The admission counter: a DistanceLFU MCH whose counts are the candidates' occurrences."""
    return _mch(feature.probation_size, DistanceLFU_EvictionPolicy(), 1, feature.max_ids_per_batch,
                f"{feature.key}_probation", device)


def _values(ids: torch.Tensor) -> JaggedTensor:
    return JaggedTensor(values=ids, lengths=torch.tensor([ids.numel()], device=ids.device))


def _counts(module: MCHManagedCollisionModule, ids: torch.Tensor) -> torch.Tensor:
    """[n] occurrences `module` (LFU-family) has counted for each id; 0 for ids it lacks."""
    sorted_ids = module._mch_sorted_raw_ids
    index = torch.searchsorted(sorted_ids[:-1], ids)
    found = sorted_ids[index] == ids
    return torch.where(found, module._mch_counts[index], torch.zeros_like(ids))


@dataclass
class RemapOutput:
    """Remapped features and the rows whose owner changed in this step.

    Attributes:
        features: the input KJT with bounded keys' raw ids replaced by rows in [0, rows).
        reassigned: key -> [r] rows just given to new ids; their embedding and optimizer
            state belong to a previous id and should be reset (empty when none).
    """

    features: KeyedJaggedTensor
    reassigned: dict[str, torch.Tensor]


class Remapper(nn.Module):
    """Maps raw ids of the bounded keys to bounded rows and, in training, updates the map.

    Unsharded and deterministic: the same stream of batches yields the same rows and state,
    which is what lets `sharding.global_remap` keep one identical copy on every worker.
    Keys not configured pass through unchanged. In eval mode it only looks up.

    Args:
        features: one `BoundedFeature` per remapped key.
        tables: the embedding configs of those keys' tables (num_embeddings == rows).
    """

    def __init__(self, features: Sequence[BoundedFeature], tables: Sequence[BaseEmbeddingConfig],
                 device: torch.device = torch.device("cpu")) -> None:
        super().__init__()
        self.features = {f.key: f for f in features}
        table_of = {key: t.name for t in tables for key in t.feature_names}
        missing = sorted(set(self.features) - set(table_of))
        if missing:
            raise ConfigError(f"bounded feature(s) {missing} have no embedding table")
        self.table_of = {key: table_of[key] for key in self.features}
        configs = [t for t in tables if any(k in self.features for k in t.feature_names)]
        self.collection = ManagedCollisionCollection(
            {self.table_of[f.key]: managed_collision_module(f, self.table_of[f.key], device) for f in features},
            configs,
        )
        self.probation = nn.ModuleDict(
            {f.key: probation_module(f, device) for f in features if f.admission_threshold > 1}
        )
        # counters are buffers, so a checkpoint of the remapper carries them
        self._slot = {key: i for i, key in enumerate(self.features)}
        self.register_buffer("evictions", torch.zeros(len(self.features), dtype=torch.int64, device=device))
        self.register_buffer("admission_rejections", torch.zeros(len(self.features), dtype=torch.int64, device=device))

    def _module(self, key: str) -> MCHManagedCollisionModule:
        return self.collection._managed_collision_modules[self.table_of[key]]  # type: ignore[return-value]

    def _remap(self, key: str, ids: torch.Tensor) -> torch.Tensor:
        table = self.table_of[key]
        return self._module(key).remap({table: _values(ids)})[table].values()

    def _update(self, key: str, ids: torch.Tensor) -> torch.Tensor:
        """Feeds one batch of `key`'s raw ids [n] to the policy; returns the reassigned rows."""
        feature = self.features[key]
        if ids.numel() > feature.max_ids_per_batch:
            raise ValueError(f"bounded feature {key!r}: {ids.numel()} ids in one batch exceed "
                             f"max_ids_per_batch={feature.max_ids_per_batch}")
        admitted = ids
        if key in self.probation:
            counter = self.probation[key]
            resident = self._remap(key, ids) != feature.default_row
            counter.profile({key: _values(ids[~resident])})
            keep = resident | (_counts(counter, ids) >= feature.admission_threshold)
            self.admission_rejections[self._slot[key]] += int((~keep).sum())
            admitted = ids[keep]
        module = self._module(key)
        open_before = int(module.open_slots())
        module.profile({self.table_of[key]: _values(admitted)})
        return self._reassigned(key, open_before)

    def _reassigned(self, key: str, open_before: int) -> torch.Tensor:
        """The rows the last merge gave to new ids [r]; counts those taken from a previous owner."""
        module = self._module(key)
        reassigned = module.evict()
        if reassigned is None:
            return torch.empty(0, dtype=torch.int64, device=module._mch_sorted_raw_ids.device)
        filled = open_before - int(module.open_slots())
        self.evictions[self._slot[key]] += reassigned.numel() - filled
        return reassigned

    @torch.no_grad()
    def flush(self) -> dict[str, torch.Tensor]:
        """Merges the ids still pending in an unfinished eviction window; returns the reassigned rows.

        TorchRec keeps those ids in non-persistent buffers, so a checkpoint taken mid-window
        would lose them. Call it (on every rank) before checkpointing; with
        `eviction_interval` 1 there is never anything pending.
        """
        out: dict[str, torch.Tensor] = {}
        for key in self.features:
            module = self._module(key)
            open_before = int(module.open_slots())
            if module._current_history_buffer_offset > 0:
                module._coalesce_history()
                module._last_eviction_iter = module._current_iter
            out[key] = self._reassigned(key, open_before)
        return out

    def forward(self, features: KeyedJaggedTensor) -> RemapOutput:
        """Args: features (KeyedJaggedTensor) raw int64 ids. Returns: RemapOutput, same keys and lengths."""
        per_key = list(features.values().split(features.length_per_key()))
        reassigned: dict[str, torch.Tensor] = {}
        for i, key in enumerate(features.keys()):
            if key not in self.features:
                continue
            if self.training:
                reassigned[key] = self._update(key, per_key[i])
            per_key[i] = self._remap(key, per_key[i])
        remapped = KeyedJaggedTensor(keys=features.keys(), values=torch.cat(per_key), lengths=features.lengths(),
                                     weights=features.weights_or_none())
        return RemapOutput(remapped, reassigned)

    def stats(self) -> dict[str, CollisionStats]:
        """Per key: rows in use, evictions so far, admission rejections so far."""
        open_slots = self.collection.open_slots()
        return {
            key: CollisionStats(
                rows_in_use=f.rows - 1 - int(open_slots[self.table_of[key]]),
                evictions=int(self.evictions[self._slot[key]]),
                admission_rejections=int(self.admission_rejections[self._slot[key]]),
            )
            for key, f in self.features.items()
        }
