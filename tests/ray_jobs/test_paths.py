"""A job's data.path and runs_dir mean the same directory on every node (ray_jobs/core/paths.py).

The rule's tests pass the cluster's shape in; `connected_cluster_shape`, which reads it from Ray,
is checked against the test session's Ray below and, inside a job under `ray job submit` on a
CPU-less head, by tests/platform/test_fake_autoscaler.py. What is tested here is the rule
itself: which path is kept, which is resolved against what, which is refused before anything
starts, and that the data set a job generates lands at the absolute path.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modules.strict import ConfigError
from ray_jobs.core.cli import add_job_flags, job_from_args
from ray_jobs.core.config import DataConfig, JobConfig
from ray_jobs.core.paths import SHARED_DIR_ENV, ClusterShape, connected_cluster_shape, job_paths

ROOT = Path(__file__).resolve().parents[2]
ONE_NODE = ClusterShape(alive_nodes=1, driver_node_cpus=4)
TWO_NODES = ClusterShape(alive_nodes=2, driver_node_cpus=4)
CPU_LESS_HEAD = ClusterShape(alive_nodes=1, driver_node_cpus=0)  # cluster.yaml's head before workers scale up


def _config(data: str = "data/synthetic/tiny", runs: str = "runs") -> JobConfig:
    return JobConfig(data=DataConfig(path=data, generate="tiny"), runs_dir=runs)


@pytest.fixture(autouse=True)
def _no_shared_dir(monkeypatch):
    monkeypatch.delenv(SHARED_DIR_ENV, raising=False)


def test_relative_paths_resolve_against_the_driver_directory_on_one_node(tmp_path):
    config = job_paths(_config(), cwd=tmp_path, cluster=lambda: ONE_NODE)
    assert config.data.path == str(tmp_path / "data/synthetic/tiny")
    assert config.runs_dir == str(tmp_path / "runs")
    assert config.data.generate == "tiny"  # nothing else changes
    assert job_paths(_config(), cwd=tmp_path, cluster=lambda: None) == config  # local Ray: one node


@pytest.mark.parametrize("shape", [TWO_NODES, CPU_LESS_HEAD])
def test_relative_path_on_a_multi_node_cluster_is_refused_naming_the_key(tmp_path, shape):
    with pytest.raises(ConfigError, match=r"data.path 'data/synthetic/tiny' is relative.*spans several nodes.*"
                                          r"--set data.path=/mnt/seesaw/data/synthetic/tiny.*SEESAW_SHARED_DIR"):
        job_paths(_config(), cwd=tmp_path, cluster=lambda: shape)
    with pytest.raises(ConfigError, match="runs_dir 'runs' is relative"):
        job_paths(_config(data=str(tmp_path / "d")), cwd=tmp_path, cluster=lambda: shape)


def test_connected_cluster_shape_reads_the_driver_node_from_ray(ray_session):
    [node] = [n for n in ray_session.nodes() if n["Alive"]]
    assert connected_cluster_shape() == ClusterShape(alive_nodes=1, driver_node_cpus=node["Resources"]["CPU"])
    assert not connected_cluster_shape().spans_nodes


def test_no_cluster_to_join_has_no_shape(tmp_path):
    """A driver with neither an initialised Ray nor $RAY_ADDRESS starts a local one-node Ray."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    probe = subprocess.run([sys.executable, "-c", "from ray_jobs.core.paths import connected_cluster_shape as s; "
                            "import ray; print(s(), ray.is_initialized())"], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0 and probe.stdout.split() == ["None", "False"], probe.stdout + probe.stderr


def test_absolute_paths_are_kept_and_need_no_cluster_lookup(tmp_path):
    config = _config(data=str(tmp_path / "d"), runs=str(tmp_path / "r"))

    def no_lookup():
        raise AssertionError("absolute paths need no cluster lookup")

    assert job_paths(config, cwd="/elsewhere", cluster=no_lookup) == config


def test_shared_dir_is_where_relative_paths_land_on_any_cluster(tmp_path, monkeypatch):
    monkeypatch.setenv(SHARED_DIR_ENV, str(tmp_path / "mnt"))
    config = job_paths(_config(), cwd="/job/working/dir/copy", cluster=lambda: TWO_NODES)
    assert config.data.path == str(tmp_path / "mnt/data/synthetic/tiny")
    assert config.runs_dir == str(tmp_path / "mnt/runs")
    monkeypatch.setenv(SHARED_DIR_ENV, "relative/mnt")
    with pytest.raises(ConfigError, match="SEESAW_SHARED_DIR='relative/mnt': must be an absolute path"):
        job_paths(_config(), cluster=lambda: ONE_NODE)


def test_storage_uris_are_kept_on_any_cluster_and_an_unknown_scheme_is_refused_naming_the_key(tmp_path):
    """A URI means the same place on every node: kept as given even where a relative path is
    refused (two nodes, no shared dir); a scheme no filesystem resolves fails before anything starts."""
    uri = f"file://{tmp_path}/runs"
    config = job_paths(_config(data=f"file://{tmp_path}/data", runs=uri), cluster=lambda: TWO_NODES)
    assert (config.data.path, config.runs_dir) == (f"file://{tmp_path}/data", uri)
    with pytest.raises(ConfigError, match=r"runs_dir 'nosuch://bucket/runs': unknown storage scheme 'nosuch'"):
        job_paths(_config(runs="nosuch://bucket/runs"), cluster=lambda: ONE_NODE)


def test_every_entry_point_gets_absolute_paths_and_the_generated_data_lands_there(tmp_path, monkeypatch):
    """job_from_args (every entry point) applies the rule; the synthetic generator then writes
    where the job's config says, which is where the workers read."""
    from ray_jobs.data.dataset import prepare_dataset

    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser()
    add_job_flags(parser)
    config = job_from_args(parser.parse_args(["--config", str(Path(__file__).parents[2] / "configs/tiny.yaml")]))
    assert config.data.path == str(tmp_path / "data/synthetic/tiny") and config.runs_dir == str(tmp_path / "runs")
    monkeypatch.chdir("/")  # the data set must not depend on where a later process runs
    dataset = prepare_dataset(config)
    assert all(Path(f).is_absolute() and Path(f).is_relative_to(tmp_path)
               for split in dataset.splits.values() for f in split.files)


def test_jobs_on_local_files_only_take_file_uris_as_paths_and_refuse_other_storage(tmp_path):
    """compare, tune and pass-by-pass training write local files: a file:// URI becomes its
    path, a bucket is refused naming the key (never resolved as a local directory 's3:')."""
    from ray_jobs.core.paths import local_only

    config = local_only(_config(data=f"file://{tmp_path}/d", runs=str(tmp_path / "r")), "compare")
    assert (config.data.path, config.runs_dir) == (str(tmp_path / "d"), str(tmp_path / "r"))
    with pytest.raises(ConfigError, match=r"runs_dir 'memory://b/runs': compare reads and writes local files only"):
        local_only(_config(runs="memory://b/runs"), "compare")
