"""Sharded checkpoints with torch.distributed.checkpoint (DCP).

Every rank writes only its own shards; DCP's metadata lets a checkpoint load under any world
size or sharding plan (DCP reshards on load). What is not a tensor (progress, RNG states) is
plain JSON. DCP stores its own metadata with pickle, so every file a rank writes is listed
with its SHA-256 in a JSON manifest, and loading verifies the manifests first: a truncated,
corrupted or swapped file is refused before any byte of it is unpickled.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException
from torch import nn
from torch.optim import Optimizer
from torchrec.optim.keyed import CombinedOptimizer, KeyedOptimizer

from sharding.errors import CheckpointError

MODEL_KEY = "model"
OPTIM_KEY = "optim"
PROGRESS_FILE = "progress.json"
MANIFEST_GLOB = "manifest-rank*.json"


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _rank_file(rank: int) -> str:
    return f"rank{rank}-state.json"


def save_sharded(directory: str | Path, model: nn.Module, optimizer: Optimizer | None = None,
                 progress: dict[str, Any] | None = None, rank_state: dict[str, Any] | None = None) -> None:
    """Collective: every rank writes its shards of model (and optimizer) state under `directory`,
    then a manifest of the files it wrote. `progress` (JSON) is written by rank 0, `rank_state`
    (JSON, e.g. RNG states) by every rank for itself."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {MODEL_KEY: model.state_dict()}
    if optimizer is not None:
        state[OPTIM_KEY] = optimizer.state_dict()
    dcp.save(state, checkpoint_id=str(directory))
    if progress is not None and _rank() == 0:
        (directory / PROGRESS_FILE).write_text(json.dumps(progress, indent=2))
    rank = _rank()
    if rank_state is not None:
        (directory / _rank_file(rank)).write_text(json.dumps(rank_state))
    mine = sorted(p for p in directory.iterdir() if p.is_file() and (
        p.name.startswith(f"__{rank}_") or p.name == _rank_file(rank)
        or (rank == 0 and p.name in (".metadata", PROGRESS_FILE))))
    manifest = {p.name: _sha256(p) for p in mine}
    (directory / f"manifest-rank{rank}.json").write_text(json.dumps(manifest, indent=2))


def verify_checkpoint(directory: str | Path) -> None:
    """Raises CheckpointError unless every file is listed in a manifest with a matching hash."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: checkpoint directory not found")
    manifests = sorted(directory.glob(MANIFEST_GLOB))
    if not manifests or not (directory / ".metadata").exists():
        raise CheckpointError(f"{directory}: not a complete Seesaw checkpoint (no manifest or no .metadata)")
    listed: dict[str, str] = {}
    for manifest in manifests:
        try:
            listed.update(json.loads(manifest.read_text()))
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{manifest}: corrupted manifest: {exc}") from exc
    for name, digest in listed.items():
        path = directory / name
        if not path.exists():
            raise CheckpointError(f"{directory}: file {name} listed in a manifest is missing")
        if _sha256(path) != digest:
            raise CheckpointError(f"{path}: content does not match its manifest hash (truncated or corrupted)")
    unlisted = sorted(p.name for p in directory.iterdir()
                      if p.is_file() and p.name not in listed and not p.match(MANIFEST_GLOB))
    dcp_files = [n for n in unlisted if n.endswith(".distcp") or n == ".metadata"]
    if dcp_files:
        raise CheckpointError(f"{directory}: files not covered by any manifest: {dcp_files}")


def _create_lazy_state(optimizer: Optimizer) -> None:
    """Gives a fresh optimizer its state tensors, so that DCP has somewhere to load them.

    torch optimizers create their state at the first step (Adam: step, exp_avg, exp_avg_sq), and
    DCP loads only the entries the target state dict already has: a fresh Adam would silently
    restore nothing and restart its moments. KeyedOptimizer.init_state() takes one step with zero
    gradients to create them (the parameters it may move are overwritten by the load). The fused
    embedding optimizer holds its state from construction and is left alone.
    """
    parts = [opt for _, opt in optimizer.optimizers] if isinstance(optimizer, CombinedOptimizer) else [optimizer]
    for part in parts:
        if isinstance(part, KeyedOptimizer) and part.params and not part.state:
            part.init_state()


def load_sharded(directory: str | Path, model: nn.Module, optimizer: Optimizer | None = None) -> dict[str, Any]:
    """Collective: verifies, then loads model (and optimizer) state in place, resharding as
    needed. Returns the progress JSON saved with it ({} if none), with this rank's own state
    under "rank_state" when the checkpoint has one for this rank."""
    verify_checkpoint(directory)
    state: dict[str, Any] = {MODEL_KEY: model.state_dict()}
    if optimizer is not None:
        _create_lazy_state(optimizer)
        state[OPTIM_KEY] = optimizer.state_dict()
    try:
        dcp.load(state, checkpoint_id=str(directory))
    except (CheckpointException, RuntimeError, ValueError, KeyError) as exc:
        reason = [line for line in str(exc).splitlines() if line.strip()][-1]  # DCP's root cause
        raise CheckpointError(f"{directory}: does not match this model: {reason[:300]}") from exc
    model.load_state_dict(state[MODEL_KEY])
    if optimizer is not None:
        optimizer.load_state_dict(state[OPTIM_KEY])
    progress_file = Path(directory) / PROGRESS_FILE
    progress = json.loads(progress_file.read_text()) if progress_file.exists() else {}
    rank_file = Path(directory) / _rank_file(_rank())
    if rank_file.exists():
        progress["rank_state"] = json.loads(rank_file.read_text())
    return progress
