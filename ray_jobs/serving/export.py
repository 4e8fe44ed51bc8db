"""A trained run -> a `torch.export` program that scores rows without Seesaw, Ray or sharding.

The sharded DCP checkpoint (written by any number of workers) loads into one unsharded
`SeesawModel` (DCP reshards on load, here to a single full copy of every table). The program
takes flat tensors, so that a server needs neither TorchRec's KeyedJaggedTensor nor the spec
to call it, and its batch dimension is dynamic:

    values  [N]     int64  every KJT key's ids, key-major (the order of `export.json` "kjt_keys")
    lengths [K, B]  int32  ids per (key, row); N = lengths.sum()
    dense   [B, F]  float32
    domain  [B]     int64
    -> probabilities [B, T] float32 (sigmoid of the logits, tasks in spec order)

The export directory:

    model.pt2     torch.export.save of the program
    spec.json     the DatasetSpec the model was trained on
    export.json   KJT keys (key, source column), tasks, arch, the checkpoint it came from
    vocab/        the data set's fitted encoders, when it was prepared from raw logs
                  (`ray_jobs.data.prepare`), so raw rows can be encoded exactly as in training
    prepare.json  with vocab/: the preparation's summary, holding its recipe
"""

from __future__ import annotations

import json
import posixpath
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from modules.model import SeesawModel
from modules.spec import DatasetSpec
from modules.strict import ConfigError
from ray_jobs.core.config import JobConfig
from ray_jobs.core.log import logger
from ray_jobs.core.run_dir import JOB_FILE, METRICS_FILE, resolve_checkpoint, run_job, run_metrics
from ray_jobs.core.storage import Location, is_uri, local_copy, location, staged_dir
from ray_jobs.data.prepare import MARKER as PREPARE_MARKER
from sharding.checkpoint import load_sharded

PROGRAM_FILE = "model.pt2"
EXPORT_FILE = "export.json"
VOCAB_DIR = "vocab"
MIN_EXAMPLE_BATCH = 4  # the example batch traced; any other size runs (Dim "batch" >= 1)


class FlatInputModel(nn.Module):
    """`SeesawModel` behind flat tensor inputs (see the module doc); returns probabilities [B, T]."""

    def __init__(self, model: SeesawModel) -> None:
        super().__init__()
        self.model = model
        self.keys = [key for key, _ in model.kjt_keys]

    def forward(self, values: torch.Tensor, lengths: torch.Tensor, dense: torch.Tensor,
                domain: torch.Tensor) -> torch.Tensor:
        sparse = KeyedJaggedTensor(keys=self.keys, values=values, lengths=lengths.reshape(-1))
        pooled = self.model.sparse_arch(sparse).to_dict()
        return torch.sigmoid(self._dense(pooled, dense, domain).logits)

    def _dense(self, pooled: dict[str, torch.Tensor], dense: torch.Tensor, domain: torch.Tensor):
        # an architecture with data-dependent execution (SMES groups rows by the experts they
        # route to: tensor sizes follow the routing) exports its equal `reference_forward`
        # (every expert on every row, masked), which torch.export can trace with a dynamic batch
        arch = self.model.dense_arch
        forward = getattr(arch, "reference_forward", None)
        return forward(pooled, dense, domain) if forward is not None else arch(pooled, dense, domain)


@dataclass(frozen=True)
class TrainedModel:
    """An unsharded model loaded from a run, with what it was trained on."""

    model: SeesawModel
    config: JobConfig
    spec: DatasetSpec
    checkpoint: str  # the checkpoint directory's path or URI


def load_unsharded(checkpoint: str | Path) -> TrainedModel:
    """The run's (or checkpoint directory's) model as one unsharded `SeesawModel` in eval mode.

    No process group is needed: DCP reads every rank's shards into the full tables.
    """
    run_dir, checkpoint_dir = resolve_checkpoint(checkpoint)
    for name in (JOB_FILE, METRICS_FILE):
        if not run_dir.child(name).exists():
            raise ConfigError(f"{run_dir}: no {name}; export needs a finished run directory")
    config = run_job(run_dir)
    spec = DatasetSpec.from_json_dict(run_metrics(run_dir)["spec"])
    model = SeesawModel(spec, config.model.arch, config.model.params)
    with local_copy(checkpoint_dir) as directory:  # on storage: downloaded (DCP reads local files)
        load_sharded(directory, model)
    return TrainedModel(model.eval(), config, spec, str(checkpoint_dir))


def example_inputs(model: SeesawModel, batch: int = MIN_EXAMPLE_BATCH) -> tuple[torch.Tensor, ...]:
    """Flat inputs of `batch` rows with every id 0 and two ids per multi-hot row."""
    spec = model.spec
    multi = [spec.feature(source).multi_hot for _, source in model.kjt_keys]
    lengths = torch.tensor([[2 if m else 1] * batch for m in multi], dtype=torch.int32)
    values = torch.zeros(int(lengths.sum()), dtype=torch.int64)
    return values, lengths, torch.zeros(batch, len(spec.dense_features)), torch.zeros(batch, dtype=torch.int64)


def export_program(model: SeesawModel) -> torch.export.ExportedProgram:
    """`torch.export` of the flat-input model with a dynamic batch (and a dynamic id count)."""
    batch, ids = torch.export.Dim("batch", min=1), torch.export.Dim("ids", min=1)
    shapes = {"values": {0: ids}, "lengths": {1: batch}, "dense": {0: batch}, "domain": {0: batch}}
    with torch.no_grad():
        return torch.export.export(FlatInputModel(model).eval(), example_inputs(model), dynamic_shapes=shapes)


def save_export(model: SeesawModel, out: str | Path, info: dict | None = None,
                vocab: str | Path | Location | None = None) -> Path | str:
    """Writes `model`'s export directory (module doc; `out` a path or a storage URI, written
    locally then uploaded: torch.export.save writes local files); `info` joins export.json,
    `vocab` (a prepared data set's encoders directory, local or on storage) is copied when
    given. Returns `out` (a Path for a plain path)."""
    with staged_dir(out) as directory:
        torch.export.save(export_program(model), directory / PROGRAM_FILE)
        model.spec.save(directory)
        (directory / EXPORT_FILE).write_text(json.dumps({
            "kjt_keys": [list(pair) for pair in model.kjt_keys],
            "tasks": list(model.spec.tasks),
            "arch": model.arch,
            "inputs": ["values", "lengths", "dense", "domain"],
            **(info or {}),
        }, indent=2) + "\n")
        if vocab is not None:
            vocab = location(vocab)
            with local_copy(vocab) as encoders:
                shutil.copytree(encoders, directory / VOCAB_DIR, dirs_exist_ok=True)
            (directory / PREPARE_MARKER).write_bytes(_parent(vocab).child(PREPARE_MARKER).read_bytes())
    return out if is_uri(out) else Path(out)


def _parent(place: Location) -> Location:
    return Location(place.filesystem, posixpath.dirname(place.path.rstrip("/")), place.scheme)


def export_run(checkpoint: str | Path, out: str | Path) -> Path | str:
    """Writes the export directory (module doc) of a run's checkpoint; returns it (`out`, a
    path or a storage URI; so may be the run directory and the data set)."""
    trained = load_unsharded(checkpoint)
    data = location(trained.config.data.path, "data.path")
    vocab = data.child(VOCAB_DIR)
    prepared = vocab.is_dir() and data.child(PREPARE_MARKER).exists()
    written = save_export(trained.model, out, {"checkpoint": trained.checkpoint}, vocab if prepared else None)
    logger.info("exported %s (%s) to %s", trained.checkpoint, trained.config.model.arch, out)
    return written
