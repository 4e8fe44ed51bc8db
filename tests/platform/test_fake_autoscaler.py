"""cluster.yaml's node types against Ray's autoscaler, on one machine (issue 23): the head and
the node types of cluster.yaml with the provider swapped for Ray 2.60's fake multi-node provider
(`ray/autoscaler/_private/fake_multi_node/node_provider.py`: worker "nodes" are raylets this
machine starts when the autoscaler asks), `ray job submit` of the tiny job with 2 workers.

The head is `RAY_FAKE_CLUSTER=1 ray start --head --autoscaling-config=<derived> --num-cpus 0`,
started and stopped by tests/platform/head.py (its own ports, temp dir and auth token; stopped
by PID, never `ray stop`). The fake nodes are started by the head's autoscaler process, so they
are among the head's descendants that head.py kills at the end, and they share its temp dir.

What carries over from cluster.yaml unchanged: cluster-wide max_workers and upscaling_speed,
the head's resources {CPU: 0, GPU: 0} (nothing is scheduled on it), every worker type's
min_workers/max_workers. What cannot:
- a worker type's resources are `{}` in cluster.yaml (EC2 detects them from the instance type);
  a fake node has no instance type, so each worker type gets FAKE_WORKER_CPUS CPUs and no GPU
  (a logical GPU on a machine without one would only mislead the job);
- the head's type is renamed to "ray.head.default": the fake provider tags its head with that
  fixed name, and under cluster.yaml's name ("head") the autoscaler logs "Missing entry for
  node_type ray.head.default", finds no head of head_node_type and loops launching a "head"
  node and terminating it (max_workers_per_type), 11 times in the first 2 minutes when tried;
- idle_timeout_minutes is cut from 10 to IDLE_MINUTES, and the autoscaler's loop runs every
  second (AUTOSCALER_UPDATE_INTERVAL_S, default 5), so the scale-down is seen within the test;
  its metrics server gets a free port (AUTOSCALER_METRIC_PORT, default 44217, may be taken).

Asserted: a relative data path is refused before anything starts, and before any worker node
is asked for (the failure the issue found on this same setup: the driver generated the data set
in its working-dir copy, and read tasks on a worker node looked in theirs); with absolute paths
the job succeeds (`ray job submit` and `ray job status` say so; the job generated its data set
where it was told and filled its run directory), the autoscaler launched nodes of cluster.yaml's
one growing worker type only (gpu_g5_12xlarge), every train worker ran on a launched node (none
on the head), and every worker node is terminated once idle.

This is the suite's one `ray job submit` test: the platform team's workflow, on the cluster shape
cluster.yaml gives them. (A second head for a single-node submit cost CI 134 s and checked
nothing this one does not; `connected_cluster_shape` on one node is tested in test_paths.py.)

Wall time: 578 s and 638 s (two runs) on the shared 2-core machine at load average 50-100 (in
the first, one of local_head's head starts timed out and was retried). The autoscaler starts the
fake nodes one at a time, each tens of seconds under that load: the provider creates one node per
launch request even when the autoscaler asks for 2 (`launch_multiple` is off by default).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import requests
import yaml

from tests.platform.head import Head, free_ports, local_head

ROOT = Path(__file__).resolve().parents[2]
FAKE_WORKER_CPUS = 2
IDLE_MINUTES = 0.25
# fake_multi_node/node_provider.py: the head's fixed node id and the node type it tags the head with
FAKE_HEAD_NODE_ID = "fffffffffffffffffffffffffffffffffffffffffffffffffff00000"
FAKE_HEAD_NODE_TYPE = "ray.head.default"
WORKER_NODE_ID = re.compile(r"f{51}\d{5}")  # what the fake provider names the nodes it launches


def fake_cluster_config(gcs_address: str) -> dict:
    """cluster.yaml with Ray's fake multi-node provider (module docstring: what carries over).

    Besides the provider, the head's type is renamed to FAKE_HEAD_NODE_TYPE: the fake provider
    tags its head with that fixed name, and under any other name the autoscaler finds no head of
    `head_node_type` and keeps launching (then terminating) one. The launcher keys below are the
    ones Ray 2.60's schema needs even though the fake provider runs no setup, sync or start command.
    """
    cluster = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    head_type = cluster["head_node_type"]
    node_types = {}
    for name, node_type in cluster["available_node_types"].items():
        is_head = name == head_type
        node_types[FAKE_HEAD_NODE_TYPE if is_head else name] = {
            "resources": node_type["resources"] if is_head else {"CPU": FAKE_WORKER_CPUS, "GPU": 0},
            "node_config": {}, "min_workers": node_type.get("min_workers", 0),
            "max_workers": node_type.get("max_workers", 0)}
    return {
        "cluster_name": cluster["cluster_name"], "max_workers": cluster["max_workers"],
        "upscaling_speed": cluster["upscaling_speed"], "idle_timeout_minutes": IDLE_MINUTES,
        "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                     "disable_launch_config_check": True, "gcs_address": gcs_address},
        "auth": {"ssh_user": "ubuntu"}, "docker": {},
        "available_node_types": node_types, "head_node_type": FAKE_HEAD_NODE_TYPE,
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "rsync_exclude": [], "rsync_filter": [], "initialization_commands": [], "setup_commands": [],
        "head_setup_commands": [], "worker_setup_commands": [], "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


def _worker_nodes(head: Head) -> list[dict]:
    """Every node but the head that ever joined (the state API keeps dead nodes)."""
    reply = requests.get(f"{head.dashboard_url}/api/v0/nodes?limit=100&detail=true", timeout=30,
                         headers={"Authorization": f"Bearer {head.env['RAY_AUTH_TOKEN']}"})
    reply.raise_for_status()
    return [n for n in reply.json()["data"]["result"]["result"] if not n["is_head_node"]]


def _launched_types(head: Head) -> list[str]:
    """The node types the autoscaler launched, from its event log (`ray status`'s source)."""
    log = next(head.temp_dir.glob("session_*/logs/monitor.log")).read_text()
    return re.findall(r"Adding \d+ node\(s\) of type (\S+)\.", log)


def _submit(head: Head, *args: str) -> tuple[int, str]:
    proc = head.job_cli("submit", "--working-dir", ".", "--", "python", "-m", "ray_jobs.train",
                        "--config", "configs/tiny.yaml", "--set", "workers.num_workers=2", *args,
                        cwd=ROOT, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def test_cluster_yaml_node_types_scale_up_for_the_job_run_nothing_on_the_head_and_scale_down(tmp_path):
    cluster = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    config = fake_cluster_config("127.0.0.1:1")
    head_type = config["available_node_types"][FAKE_HEAD_NODE_TYPE]
    assert head_type["resources"] == cluster["available_node_types"][cluster["head_node_type"]]["resources"] \
        == {"CPU": 0, "GPU": 0}
    growing = [name for name, t in cluster["available_node_types"].items() if t.get("max_workers", 0) > 0]
    assert growing == ["gpu_g5_12xlarge"], "the test expects cluster.yaml's one worker type that can scale up"

    # the autoscaler's loop every second (default 5 s), and its metrics server on a port of its own
    env = {"AUTOSCALER_UPDATE_INTERVAL_S": "1", "AUTOSCALER_METRIC_PORT": str(free_ports(1)[0])}
    with local_head(num_cpus=0, autoscaling=fake_cluster_config, env=env) as head:
        code, out = _submit(head, "--run-name", "relative")
        assert code != 0 and "data.path 'data/synthetic/tiny' is relative, but this Ray cluster spans several " \
                              "nodes (the driver's node has no CPU" in out, out[-4000:]
        assert not _worker_nodes(head), "the relative path was refused only after worker nodes were asked for"

        runs, data = tmp_path / "runs", tmp_path / "data" / "tiny"
        code, out = _submit(head, "--run-name", "fake", "--set", f"runs_dir={runs}", "--set", f"data.path={data}",
                            "--set", "train.max_steps_per_epoch=8")
        job_id = re.search(r"Job '(raysubmit_\w+)' submitted successfully", out)
        assert code == 0 and job_id and f"Job '{job_id.group(1)}' succeeded" in out, out[-6000:] + head.log_tail()
        status = head.job_cli("status", job_id.group(1), timeout=120)
        assert f"Job '{job_id.group(1)}' succeeded" in status.stdout, status.stdout[-2000:]

        workers = _worker_nodes(head)
        assert workers, "the autoscaler launched no worker node"
        assert set(_launched_types(head)) == {"gpu_g5_12xlarge"}, _launched_types(head)
        assert all(WORKER_NODE_ID.fullmatch(n["node_id"]) and n["node_id"] != FAKE_HEAD_NODE_ID
                   and n["resources_total"].get("CPU") == FAKE_WORKER_CPUS for n in workers), workers
        assert (data / "spec.json").exists(), "the job generates the data set where it was told"
        assert (runs / "fake" / "job.yaml").exists()
        metrics = json.loads((runs / "fake" / "metrics.json").read_text())
        assert metrics["job"]["name"] == "tiny" and metrics["job"]["model"]["arch"] == "sharedbottom"
        assert 0.0 < metrics["summary"]["test_mean_auc"] < 1.0, metrics["summary"]
        assert len(metrics["worker_nodes"]) == 2, metrics["worker_nodes"]
        assert FAKE_HEAD_NODE_ID not in metrics["worker_nodes"], "a train worker ran on the CPU-less head"
        assert set(metrics["worker_nodes"]) <= {n["node_id"] for n in workers}, (metrics["worker_nodes"], workers)

        deadline = time.monotonic() + IDLE_MINUTES * 60 + 120
        while alive := [n["node_id"] for n in _worker_nodes(head) if n["state"] == "ALIVE"]:
            assert time.monotonic() < deadline, f"idle worker nodes {alive} were not terminated"
            time.sleep(2)
