"""A DMP-sharded model behind one global remapping state: bounded embeddings on CPU.

TorchRec 1.8 cannot shard managed-collision modules on CPU (its sharder offers row-wise on
CUDA only). So on CPU the tables of bounded features are ordinary `rows`-row EBC tables,
sharded table- or column-wise like every other table, and the remapping in front of them is
one replicated state (`sharding.global_remap.GlobalRemapper`). This module joins the two:

    raw ids --GlobalRemapper (all-gather, same update on every rank)--> rows --DMP(SeesawModel)--> loss

A row the remapper gives to a new id still holds the previous owner's embedding and row-wise
Adagrad state; it is reset to zero (a fresh row) on whichever rank holds that row.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torchrec.distributed.model_parallel import DistributedModelParallel
from torchrec.modules.embedding_configs import EmbeddingBagConfig

from modules.batch import Batch
from modules.collision import BoundedFeature, CollisionStats, Remapper
from modules.model import StepOutput
from sharding.global_remap import GlobalRemapper
from sharding.state import local_pieces

SHARDED_PREFIX = "sharded."
REMAPPER_PREFIX = "remapper."


class BoundedShardedModel(nn.Module):
    """Remaps the bounded keys' raw ids, then runs the DMP-wrapped SeesawModel.

    Training steps are collective (one all-gather of raw ids); evaluation only looks up and
    needs no collective. Args: sharded: DMP(SeesawModel) whose bounded tables have `rows` rows;
    features: one BoundedFeature per bounded KJT key (see `modules.collision.for_keys`);
    tables: their embedding configs; pg: the data-parallel group (None: the default group).
    """

    def __init__(self, sharded: DistributedModelParallel, features: Sequence[BoundedFeature],
                 tables: Sequence[EmbeddingBagConfig], pg: dist.ProcessGroup | None = None) -> None:
        super().__init__()
        self.sharded = sharded
        self.remapper = GlobalRemapper(Remapper(features, tables), pg)
        self.pg = pg
        self._rows = {key: self._local_rows(table) for key, table in self.remapper.remapper.table_of.items()}

    def _local_rows(self, table: str) -> list[tuple[int, torch.Tensor]]:
        """(first row, local view) of every piece of `table`'s weights and optimizer state on this rank.

        The views alias FBGEMM's storage (writes reach the kernels); they are taken once, since
        DMP's state_dict() builds ShardedTensor metadata for every table on each call.
        """
        name = f"sparse_arch.embedding_bags.{table}.weight"
        tensors = [self.sharded.state_dict()[name],
                   *self.sharded.fused_optimizer.state_dict()["state"].get(name, {}).values()]
        return [(index[0].start, local) for tensor in tensors for index, local in local_pieces(tensor)]

    @torch.no_grad()
    def reset_rows(self, reassigned: dict[str, torch.Tensor]) -> None:
        """Zeroes the embedding and optimizer state of the given rows, where this rank holds them."""
        for key, rows in reassigned.items():
            if rows.numel() == 0:
                continue
            for start, local in self._rows[key]:
                mine = rows[(rows >= start) & (rows < start + local.shape[0])] - start
                local[mine.to(local.device)] = 0

    def forward(self, batch: Batch) -> tuple[torch.Tensor, StepOutput]:
        """Args: batch with raw ids in the bounded keys. Returns: the DMP model's (loss, StepOutput)."""
        out = self.remapper(batch.sparse)
        if self.training:
            self.reset_rows(out.reassigned)
        return self.sharded(replace(batch, sparse=out.features))

    def flush(self) -> None:
        """Collective-free: merges ids of an unfinished eviction window (see `Remapper.flush`)."""
        self.reset_rows(self.remapper.remapper.flush())

    def stats(self) -> dict[str, CollisionStats]:
        return self.remapper.remapper.stats()

    def check_replicas(self) -> None:
        """Collective: raises if the remapping state differs between ranks (it never should)."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.remapper.remapper.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.cpu().numpy().tobytes())
        digests: list[Any] = [None] * dist.get_world_size(self.pg)
        dist.all_gather_object(digests, digest.hexdigest(), group=self.pg)
        if len(set(digests)) != 1:
            raise RuntimeError(f"remapping state differs between ranks: {digests}")

    # One checkpointable state: the sharded model's entries and the (replicated) remapper's.
    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        state = {SHARDED_PREFIX + k: v for k, v in self.sharded.state_dict().items()}
        state.update({REMAPPER_PREFIX + k: v for k, v in self.remapper.remapper.state_dict().items()})
        return state

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True, assign: bool = False) -> Any:  # type: ignore[override]
        def part(prefix: str) -> dict[str, Any]:
            return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}

        self.sharded.load_state_dict(part(SHARDED_PREFIX), strict=strict)
        return self.remapper.remapper.load_state_dict(part(REMAPPER_PREFIX), strict=strict)
