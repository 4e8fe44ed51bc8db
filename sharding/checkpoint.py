"""Sharded checkpoints with torch.distributed.checkpoint (DCP).

Every rank writes only its own shards; DCP's metadata lets a checkpoint load under any world
size or sharding plan (DCP reshards on load). Plain JSON beside the shards holds what is not a
tensor (progress, config), so nothing is ever unpickled from a checkpoint by Seesaw itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.optim import Optimizer

MODEL_KEY = "model"
OPTIM_KEY = "optim"
PROGRESS_FILE = "progress.json"


def save_sharded(directory: str | Path, model: nn.Module, optimizer: Optimizer | None = None,
                 progress: dict[str, Any] | None = None) -> None:
    """Collective: every rank writes its shards of model (and optimizer) state under `directory`."""
    state: dict[str, Any] = {MODEL_KEY: model.state_dict()}
    if optimizer is not None:
        state[OPTIM_KEY] = optimizer.state_dict()
    Path(directory).mkdir(parents=True, exist_ok=True)
    dcp.save(state, checkpoint_id=str(directory))
    if progress is not None and (not dist.is_initialized() or dist.get_rank() == 0):
        (Path(directory) / PROGRESS_FILE).write_text(json.dumps(progress, indent=2))


def load_sharded(directory: str | Path, model: nn.Module, optimizer: Optimizer | None = None) -> dict[str, Any]:
    """Collective: loads model (and optimizer) state in place, resharding as needed.

    Returns the progress JSON saved with it ({} if none).
    """
    state: dict[str, Any] = {MODEL_KEY: model.state_dict()}
    if optimizer is not None:
        state[OPTIM_KEY] = optimizer.state_dict()
    dcp.load(state, checkpoint_id=str(directory))
    model.load_state_dict(state[MODEL_KEY])
    if optimizer is not None:
        optimizer.load_state_dict(state[OPTIM_KEY])
    progress = Path(directory) / PROGRESS_FILE
    return json.loads(progress.read_text()) if progress.exists() else {}
