"""A Ray head of its own for one test: `ray start --head --block` in a subprocess, on free ports
and a short temp dir of its own, with token authentication, stopped by its own PIDs.

Never `ray stop` here: it stops every Ray on the machine (other sessions' and the test
session's). The head's `ray start --block` process shuts its node down on SIGTERM; any of its
descendants still alive after that are killed by PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import yaml

import ray as _ray  # noqa: F401  (puts Ray's bundled psutil on the path)
import psutil

STARTUP_TIMEOUT_S = 360


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free right now (held open together so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass(frozen=True)
class Head:
    gcs_address: str          # host:port for `ray start --address` / ray.init
    dashboard_url: str        # http://127.0.0.1:<port>: the Jobs API (`ray job submit --address`)
    temp_dir: Path
    env: dict[str, str]       # the environment every client of this head needs (auth token, PATH)
    process: subprocess.Popen
    agent_url: str            # the head's dashboard agent (what the job server hands a job to)

    def log_tail(self) -> str:
        logs = [self.temp_dir / "ray_start.log", *self.temp_dir.glob("session_*/logs/raylet.err")]
        return "\n".join(f"{p}:\n{p.read_text()[-1500:]}" for p in logs if p.exists())

    def job_cli(self, *args: str, timeout: float = 600, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
        """`ray job <args>` against this head."""
        ray = str(Path(sys.executable).with_name("ray"))
        return subprocess.run([ray, "job", *args[:1], "--address", self.dashboard_url, *args[1:]],
                              env=self.env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _environment(token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_USAGE_STATS_ENABLED="0",
               RAY_DASHBOARD_STARTUP_TIMEOUT_S="300",  # default 60 s: too short on a loaded machine
               # the job's `python` is this interpreter (the venv with the project's stack)
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    return env


@contextmanager
def local_head(num_cpus: float = 4, autoscaling: Callable[[str], dict] | None = None, attempts: int = 3,
               env: dict[str, str] | None = None) -> Iterator[Head]:
    """Starts a head with the dashboard and job server; yields it; stops it and what it started.

    `autoscaling(gcs_address)`: the autoscaler config the head runs with (Ray's fake multi-node
    provider: RAY_FAKE_CLUSTER=1; the worker nodes it launches are processes of this machine).
    `env`: extra environment of the head's processes (e.g. the autoscaler's
    AUTOSCALER_UPDATE_INTERVAL_S); its clients get it too.

    A start is retried: on a loaded machine the dashboard agent can take longer than the 15 s
    that Ray 2.60's raylet waits for its port file, and the raylet then aborts
    (ray-project/ray#65983); the head is up once its job server and agent both answer.
    """
    failures = []
    for _ in range(attempts):
        head = _start(num_cpus, autoscaling, env or {})
        try:
            _wait_until_ready(head)
        except (RuntimeError, TimeoutError) as exc:
            failures.append(str(exc))
            _stop(head)
            continue
        try:
            yield head
        finally:
            _stop(head)
        return
    raise RuntimeError(f"no Ray head after {attempts} starts:\n" + "\n---\n".join(failures))


def _start(num_cpus: float, autoscaling: Callable[[str], dict] | None, extra_env: dict[str, str]) -> Head:
    temp_dir = Path(tempfile.mkdtemp(prefix="rh", dir="/tmp"))  # short: Ray's socket paths have a length limit
    gcs, dashboard, agent_http, agent_grpc, runtime_env, metrics, client, node_manager, object_manager = free_ports(9)
    env = {**_environment(uuid.uuid4().hex), **extra_env}
    extra_args = []
    if autoscaling is not None:
        config = temp_dir / "autoscaling.yaml"
        config.write_text(yaml.safe_dump(autoscaling(f"{_ray.util.get_node_ip_address()}:{gcs}")))
        extra_args.append(f"--autoscaling-config={config}")
        env["RAY_FAKE_CLUSTER"] = "1"
    ray = str(Path(sys.executable).with_name("ray"))
    command = [ray, "start", "--head", "--block", f"--port={gcs}", f"--dashboard-port={dashboard}",
               "--dashboard-host=127.0.0.1", "--include-dashboard=true",
               f"--dashboard-agent-listen-port={agent_http}", f"--dashboard-agent-grpc-port={agent_grpc}",
               f"--runtime-env-agent-port={runtime_env}", f"--metrics-export-port={metrics}",
               f"--ray-client-server-port={client}", f"--node-manager-port={node_manager}",
               f"--object-manager-port={object_manager}", f"--temp-dir={temp_dir}", f"--num-cpus={num_cpus}",
               "--disable-usage-stats", *extra_args]
    with open(temp_dir / "ray_start.log", "w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return Head(f"127.0.0.1:{gcs}", f"http://127.0.0.1:{dashboard}", temp_dir, env, process,
                f"http://127.0.0.1:{agent_http}")


def _wait_until_ready(head: Head) -> None:
    import requests

    auth = {"Authorization": f"Bearer {head.env['RAY_AUTH_TOKEN']}"}

    def answers(url: str) -> bool:
        if head.process.poll() is not None:
            raise RuntimeError(f"ray start exited {head.process.returncode}: {head.log_tail()}")
        try:
            return requests.get(url, timeout=2, headers=auth).ok
        except requests.RequestException:
            return False

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    ready_since = None
    while time.monotonic() < deadline:
        if answers(f"{head.dashboard_url}/api/version") and answers(f"{head.agent_url}/api/healthz"):
            ready_since = ready_since or time.monotonic()
            if time.monotonic() - ready_since > 3:  # still both up: the raylet did not abort meanwhile
                return
        else:
            ready_since = None
        time.sleep(1)
    raise TimeoutError(f"job server at {head.dashboard_url} not up after {STARTUP_TIMEOUT_S} s: {head.log_tail()}")


def _stop(head: Head) -> None:
    """SIGTERM to `ray start --block` (it stops its node), then SIGKILL to whatever is left of
    its process group (the head was started in a session of its own: the group is all its own)
    and to each descendant still alive (Ray's workers run in sessions of their own)."""
    process = head.process
    try:  # Ray starts its workers in sessions of their own: remember every descendant first
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    for child in psutil.wait_procs(descendants, timeout=10)[1]:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    if not os.environ.get("SEESAW_KEEP_HEAD_DIR"):
        shutil.rmtree(head.temp_dir, ignore_errors=True)
