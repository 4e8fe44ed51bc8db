"""Paths that mean the same directory on every node of the cluster.

A job's `data.path` and `runs_dir` are read and written by processes on many nodes: Ray Data's
read tasks open the Parquet files wherever they run, and every train worker writes its
checkpoint shards under the run directory. A relative path is resolved against each
process's own working directory, which under `ray job submit --working-dir .` is a temporary
per-node copy of the code: the driver would generate the data set in its copy and a read task
on another node would look in its own (FileNotFoundError), and a run directory there is
deleted with the job's runtime environment.

So before anything starts (`job_paths`, applied by `core.cli.job_from_args` to every job):
- an absolute path is kept: it is the user's statement that every node mounts it;
- a relative path resolves against $SEESAW_SHARED_DIR when set (the mount every node shares,
  e.g. /mnt/seesaw in cluster.yaml), so configs stay portable across clusters;
- otherwise it resolves against the driver's working directory, which is right for local Ray
  and for a one-node cluster; on a cluster that spans (or can grow to) several nodes that path
  exists on the driver's node only, so the job is refused with an error naming the key.

A storage URI (`s3://bucket/runs`, `gs://...`, `file:///mnt/runs`) is the same place for every
node by construction: it is kept as given, once its scheme resolves to a filesystem
(`core.storage.location`; an unknown scheme is refused here, naming the key). The data and
run-directory code reads and writes it through `core.storage`, so a multi-node cluster needs
shared storage, not a shared filesystem.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from modules.strict import ConfigError
from ray_jobs.core.config import JobConfig, with_overrides
from ray_jobs.core.storage import is_uri, local_path, location

SHARED_DIR_ENV = "SEESAW_SHARED_DIR"
PATH_KEYS = ("data.path", "runs_dir")


@dataclass(frozen=True)
class ClusterShape:
    """What decides whether a driver-local path can serve the whole job."""

    alive_nodes: int
    driver_node_cpus: float  # 0: the workers run on other nodes (a head like cluster.yaml's)

    @property
    def spans_nodes(self) -> bool:
        return self.alive_nodes > 1 or self.driver_node_cpus <= 0


def connected_cluster_shape() -> ClusterShape | None:
    """The shape of the cluster this driver joins (RAY_ADDRESS, e.g. under `ray job submit`, or
    an already initialised Ray); None for the local Ray a job starts itself (one node)."""
    import ray

    if not ray.is_initialized():
        if not os.environ.get("RAY_ADDRESS"):
            return None
        ray.init()  # what `training.runtime.init_ray` does for RAY_ADDRESS; it then finds Ray up
    node_id = ray.get_runtime_context().get_node_id()
    nodes = [n for n in ray.nodes() if n["Alive"]]
    cpus = next((n["Resources"].get("CPU", 0.0) for n in nodes if n["NodeID"] == node_id), 0.0)
    return ClusterShape(len(nodes), cpus)


def local_only(config: JobConfig, what: str) -> JobConfig:
    """`config` for a job whose code reads and writes its directories as local files (pass-by-pass
    training, compare, tune): `data.path` and `runs_dir` as plain paths (`storage.local_path`:
    a file:// URI becomes its path, another storage URI is refused naming the key)."""
    local = {key: local_path(_get(config, key), key, what) for key in PATH_KEYS if is_uri(_get(config, key))}
    return with_overrides(config, local, where="paths") if local else config


def _get(config: JobConfig, key: str) -> str:
    return config.data.path if key == "data.path" else config.runs_dir


def job_paths(config: JobConfig, cwd: str | Path | None = None,
              cluster: Callable[[], ClusterShape | None] = connected_cluster_shape) -> JobConfig:
    """`config` with `data.path` and `runs_dir` absolute (module docstring for the rules).

    Storage URIs are kept. Raises ConfigError for a URI of an unknown scheme, and for a
    relative path on a cluster that spans several nodes when $SEESAW_SHARED_DIR is unset.
    """
    shared = os.environ.get(SHARED_DIR_ENV)
    if shared and not Path(shared).is_absolute():
        raise ConfigError(f"${SHARED_DIR_ENV}={shared!r}: must be an absolute path (the directory every node mounts)")
    base = Path(shared) if shared else Path(cwd or os.getcwd())
    resolved, shape = {}, None
    for key in PATH_KEYS:
        value = _get(config, key)
        if is_uri(value):
            location(value, key)  # the scheme resolves, or a ConfigError naming the key
            continue
        if Path(value).is_absolute():
            continue
        if not shared:
            shape = shape or cluster() or ClusterShape(1, 1.0)
            if shape.spans_nodes:
                where = (f"{shape.alive_nodes} nodes alive" if shape.alive_nodes > 1 else
                         "the driver's node has no CPU, so the workers run on other nodes")
                raise ConfigError(
                    f"{key} {value!r} is relative, but this Ray cluster spans several nodes ({where}): each node "
                    f"would resolve it against its own working directory ({base} here; under `ray job submit "
                    f"--working-dir` a temporary per-node copy of the code). Give an absolute path on storage every "
                    f"node mounts (e.g. --set {key}=/mnt/seesaw/{value}) or set ${SHARED_DIR_ENV} to that mount")
        resolved[key] = str((base / value).resolve())
    return with_overrides(config, resolved, where="paths") if resolved else config
