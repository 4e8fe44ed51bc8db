"""Every file name a run directory holds, and the one way to find a run's checkpoint.

A run directory is a plain path or on storage (`runs_dir: s3://bucket/runs`): it is reached
as a `core.storage.Location`, and the checkpoint pointers hold a path for a plain run
directory and a URI for one on storage.

A run directory (`<runs_dir>/<run name>/`) is what Ray Train writes (its checkpoints) plus
what the driver adds when the run ends:

    job.yaml                   the job config as run (`load_config` parses it back)
    metrics.json               summary + domain x task cells of the test split, spec, job
    test_predictions.parquet   one row per test sample (sample_id, labels, probabilities)
    logs/                      driver.log, worker-<rank>.log (`core.console`)
    latest_checkpoint          path (or URI) of the last model checkpoint Ray Train committed
    best_checkpoint            path of the best-validation epoch's checkpoint (train.select_metric):
                               the model that scored the test split; evaluate uses it
    driver.lock                the running driver's PID/host (`training.run_lock`; empty when none)
    tensorboard/               rank 0's TensorBoard event files: training and validation curves
                               (`training.curves`; `tensorboard --logdir <run dir>/tensorboard`)
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path

from modules.strict import ConfigError, from_dict, parse_yaml
from ray_jobs.core.config import JobConfig, load_config
from ray_jobs.core.storage import Location, is_uri, location

JOB_FILE = "job.yaml"
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "test_predictions.parquet"
LATEST_CHECKPOINT_FILE = "latest_checkpoint"
BEST_CHECKPOINT_FILE = "best_checkpoint"
DRIVER_LOCK_FILE = "driver.lock"
RESULT_FILE = "result.json"  # a worker group's JSON payload, carried back in a small checkpoint
TENSORBOARD_DIR = "tensorboard"
DCP_METADATA_FILE = ".metadata"  # torch.distributed.checkpoint's marker of a checkpoint directory


def run_location(runs_dir: str, run_name: str) -> Location:
    """`<runs_dir>/<run_name>`: absolute for a plain path (as Ray Train's storage_path makes it),
    on its storage for a URI (`core.storage`)."""
    place = location(runs_dir, "runs_dir")
    if not place.scheme:
        place = Location(place.filesystem, str(Path(place.path).resolve()))
    return place.child(run_name)


def checkpoint_location(run: Location, checkpoint_path: str) -> Location:
    """The run's checkpoint directory that Ray Train reports as `checkpoint_path` (a path on the
    storage filesystem, scheme stripped): Ray Train keeps checkpoints directly under the run
    directory, so its name under `run` is the same place with the run's scheme."""
    return run.child(posixpath.basename(checkpoint_path.rstrip("/")))


def _pointer(run: Location, text: str) -> Location:
    """A best/latest_checkpoint file's content: an absolute path (a plain run directory) or a URI."""
    text = text.strip()
    return location(text) if is_uri(text) or not run.scheme else checkpoint_location(run, text)


def run_job(run: Location) -> JobConfig:
    """The run's job.yaml as a JobConfig (errors name the file, local or on storage)."""
    job = run.child(JOB_FILE)
    if run.is_local:
        return load_config(job.local)
    if not job.is_file():
        raise ConfigError(f"{job}: config file not found")
    return from_dict(JobConfig, parse_yaml(job.read_text(), str(job)), where=str(job))


def run_metrics(run: Location) -> dict:
    """The run's metrics.json."""
    return json.loads(run.child(METRICS_FILE).read_text())


def resolve_checkpoint(path: str | Path | Location) -> tuple[Location, Location]:
    """(run directory, checkpoint directory) from either of them, local or on storage; a run
    directory gives its best checkpoint (the one metrics.json's test figures come from), else
    its latest."""
    path = location(path, "--checkpoint")
    if not path.scheme:
        path = Location(path.filesystem, str(Path(path.path).resolve()))
    for pointer in (BEST_CHECKPOINT_FILE, LATEST_CHECKPOINT_FILE):
        if path.child(pointer).exists():
            return path, _pointer(path, path.child(pointer).read_text())
    if path.child(DCP_METADATA_FILE).exists():
        parent = posixpath.dirname(path.path.rstrip("/"))
        return Location(path.filesystem, parent, path.scheme), path
    raise ConfigError(f"{path}: neither a run directory ({LATEST_CHECKPOINT_FILE}) nor a checkpoint "
                      f"({DCP_METADATA_FILE})")
