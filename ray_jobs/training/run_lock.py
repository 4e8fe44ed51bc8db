"""One driver per run name: a lock file in the run directory.

`python -m ray_jobs.train --run-name X` started again after its driver died resumes run X
(Ray Train v2 reloads the run's checkpoint list from `<runs_dir>/X` and the train loop restarts
at the latest checkpoint); a second driver started while the first still runs would have two
worker groups writing the same checkpoints, so it is refused.

The lock is an advisory `flock` on `<run dir>/driver.lock`, which also holds the owner's PID,
host and start time for the error message. The kernel drops a `flock` when its process dies,
SIGKILL included, so a dead driver's lock is stale by construction and the next driver takes
it over atomically (no PID-liveness guess, no race between two drivers taking it over). On a
shared filesystem `flock` is as good as the filesystem's locks (Linux NFSv4 maps it to NFS
byte-range locks). A run directory on object storage (s3://, gs://) has no lock (`UnlockedRun`).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from modules.strict import ConfigError
from ray_jobs.core.log import logger
from ray_jobs.core.run_dir import DRIVER_LOCK_FILE
from ray_jobs.core.storage import Location, location

_held: dict[Path, "RunLock"] = {}  # run dir -> this process's lock (re-entrant within a process)


@dataclass
class RunLock:
    run_dir: Path
    fd: int
    depth: int = 1

    def release(self) -> None:
        """Drops one hold; the last one removes the owner record and unlocks."""
        self.depth -= 1
        if self.depth > 0 or _held.get(self.run_dir) is not self:
            return
        del _held[self.run_dir]
        try:
            os.ftruncate(self.fd, 0)
        finally:
            os.close(self.fd)  # closing the descriptor drops the flock


def _owner(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


class UnlockedRun:
    """A run directory on object storage (s3://, gs://): no lock exists there (no flock, no
    atomic create-if-absent through pyarrow's filesystems), so none is taken; `release` is a no-op."""

    def release(self) -> None:
        pass


def hold_run(run_dir: str | Path | Location) -> RunLock | UnlockedRun:
    """Takes `run_dir`'s driver lock for this process (creating the directory), or raises
    ConfigError naming the driver that holds it. Call `release()` when the run is done; a
    driver that dies releases it with its process. A run directory on remote storage gets
    no lock (`UnlockedRun`): two drivers of one run name there are not refused."""
    place = location(run_dir)
    if not place.is_local:
        logger.info("run directory %s is on object storage: no driver lock (one driver per run name is up to "
                    "you)", place)
        return UnlockedRun()
    run_dir = place.local.resolve()
    if run_dir in _held:
        _held[run_dir].depth += 1
        return _held[run_dir]
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / DRIVER_LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        owner = _owner(path)
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner["started"])) if "started" in owner else "?"
        raise ConfigError(f"run {run_dir.name!r} is in use: its driver (pid {owner.get('pid', '?')} on host "
                          f"{owner.get('host', '?')}, started {since}) still runs ({path}); wait for it, stop it, "
                          f"or pick another --run-name") from None
    previous = _owner(path)
    if previous:  # a driver died holding it (its flock went with it): this one resumes the run
        logger.info("run %r: taking over the lock of driver pid %s on %s, which is gone", run_dir.name,
                    previous.get("pid"), previous.get("host"))
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}).encode(), 0)
    os.fsync(fd)
    lock = _held[run_dir] = RunLock(run_dir, fd)
    return lock
