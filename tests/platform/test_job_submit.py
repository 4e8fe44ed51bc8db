"""The platform team's workflow for real on one machine: a Ray head with the job server
(`ray[default]`), `ray job submit --working-dir . -- python -m ray_jobs.train --config
configs/tiny.yaml`, the job succeeds and its run directory holds metrics.json.

The head is this test's own (tests/platform/head.py: its own ports, temp dir and auth token),
never the test session's Ray. Paths are absolute, as on a real cluster: the job's working
directory is a per-node copy of the repo that Ray deletes, so a run directory inside it would
be lost (and on several nodes, each node would see another copy; ray_jobs/core/paths.py).
The job generates its data set itself, into the directory it is given.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.platform.head import local_head

ROOT = Path(__file__).resolve().parents[2]


def test_ray_job_submit_of_the_tiny_job_succeeds_and_fills_its_run_directory(tmp_path):
    runs, data = tmp_path / "runs", tmp_path / "data" / "tiny"
    with local_head(num_cpus=4) as head:
        proc = head.job_cli("submit", "--working-dir", ".", "--", "python", "-m", "ray_jobs.train",
                            "--config", "configs/tiny.yaml", "--run-name", "submitted",
                            "--set", f"runs_dir={runs}", "--set", f"data.path={data}", cwd=ROOT)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-6000:]
        job_id = re.search(r"Job '(raysubmit_\w+)' submitted successfully", out)
        assert job_id, out[-3000:]
        assert f"Job '{job_id.group(1)}' succeeded" in out, out[-3000:]
        status = head.job_cli("status", job_id.group(1), timeout=120)
        assert f"Job '{job_id.group(1)}' succeeded" in status.stdout, status.stdout[-2000:]
        # what a job's driver reads of its cluster to decide about relative paths (core/paths.py)
        shape = head.job_cli("submit", "--working-dir", ".", "--", "python", "-c",
                             "from ray_jobs.core.paths import connected_cluster_shape as s; print('SHAPE', s())",
                             cwd=ROOT, timeout=300)
        assert "SHAPE ClusterShape(alive_nodes=1, driver_node_cpus=4.0)" in shape.stdout, shape.stdout[-3000:]

    assert (data / "spec.json").exists(), "the job generates the data set where it was told"
    metrics = json.loads((runs / "submitted" / "metrics.json").read_text())
    assert metrics["job"]["name"] == "tiny" and metrics["job"]["model"]["arch"] == "sharedbottom"
    assert 0.5 < metrics["summary"]["test_mean_auc"] < 1.0  # a trained model on the tiny preset
    assert len(metrics["worker_nodes"]) == 2  # configs/tiny.yaml's 2 workers
    assert (runs / "submitted" / "job.yaml").exists()
