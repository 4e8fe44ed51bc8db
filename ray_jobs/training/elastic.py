"""A run that resumes on another number of workers (`workers.num_workers: [min, max]`): where
in the interrupted epoch it picks up, and the record of the restart.

Ray Train v2 does the restarting (`ScalingConfig(num_workers=(min, max))`, its
ElasticScalingPolicy): after a lost worker or node the controller starts a new group with as
many workers as the cluster has room for (at least min, at most max) and the train loop
resumes from the latest committed checkpoint. A new world size changes three things, and each
is handled where it lives: the sharding plan is planned again for the group
(`worker.build_sharded_model`), the DCP checkpoint is resharded on load
(`sharding.checkpoint.load_sharded`), and the epoch's data position is mapped here.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

# progress keys a checkpoint carries for this (older checkpoints lack them: same world, unknown driver)
WORLD_SIZE = "world_size"
DRIVER_ID = "driver_id"


def mapped_skip(step: int, world_before: int, world_after: int) -> int:
    """Batches each of `world_after` workers skips to resume an epoch that `world_before`
    workers had trained `step` batches each of (batch size B per worker, equal shards).

    On the same world size: `step`, exactly the batches this rank trained (the shards of an
    ordered split are the same in every attempt, `data.ingest`), so no row of the interrupted
    epoch is trained twice or skipped.

    On another world size the epoch's shards are cut anew (Ray Data's `streaming_split` over
    the new count), so the position is carried over as a row count: the old group had trained
    R = step * world_before * B rows of the epoch; each new worker skips floor(R / (world_after
    * B)) batches. What holds:
    - count: the rows counted as trained in the epoch are R less fewer than world_after * B
      (floor: up to one new global batch is trained again, never a row counted that was not);
    - which rows: the split deals the epoch's blocks (`data.ingest.block_rows` rows each)
      to the shards greedily in block order, so the old group's trained rows and the new
      group's skipped rows are both the epoch's first blocks up to the frontier; they differ
      only in the blocks each group had started but not finished there. As many rows are
      trained twice as are skipped, at most (world_before + world_after) * block rows of
      each; measured on the rows themselves (tests/ray_jobs/test_elastic.py, tiny data, 2 -> 1
      workers after 10 steps of 256 rows): 2,560 of the 5,120 rows trained before the loss are
      trained again and 2,560 others of the epoch's 16,000 are skipped. The other epochs are
      untouched: every row once.
    """
    if step < 0 or world_before < 1 or world_after < 1:
        raise ValueError(f"mapped_skip: need step >= 0 and world sizes >= 1, got {step}, {world_before}, {world_after}")
    return step * world_before // world_after


def restart_reason(progress: dict[str, Any], world_size: int, driver_id: str | None) -> str:
    """Why this attempt restored a checkpoint, as far as a worker can tell: the driver that
    started it differs (a restarted driver), or the world size changed (a group that lost a
    worker or node shrank, or one that saw capacity return grew), or a worker failed and the
    group restarted at its size."""
    before = progress.get(WORLD_SIZE, world_size)
    if driver_id is not None and progress.get(DRIVER_ID) not in (None, driver_id):
        return "driver restarted (same run name)"
    if world_size < before:
        return "worker group shrank: a worker or its node was lost and the cluster had room for fewer"
    if world_size > before:
        return "worker group grew: capacity returned"
    return "worker group restarted at the same size (a worker failed)"


def resume_record(progress: dict[str, Any], world_size: int, driver_id: str | None) -> dict[str, Any]:
    """metrics.json's `resumes` entry of this restart: the checkpoint position it resumed from
    (1-based epoch, step within it in the old group's batches, whether that epoch had ended),
    the world size before and after, when (ISO 8601 UTC) and why (`restart_reason`)."""
    return {"epoch": progress.get("epoch", -1) + 1, "step": progress.get("step"),
            "epoch_done": progress.get("epoch_done", True),
            "world_size_before": progress.get(WORLD_SIZE, world_size), "world_size_after": world_size,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "reason": restart_reason(progress, world_size, driver_id)}
