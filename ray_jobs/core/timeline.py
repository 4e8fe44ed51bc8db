"""Where a job's wall time goes: named moments, written to metrics.json as seconds since the
driver process started (`timeline`), and one console line.

A small job's time is mostly fixed costs (issue 19): Ray's start, the train controller and
worker processes (each imports torch, TorchRec and FBGEMM), Ray Data's executions. The
timeline names them per run, so that a person sees which one a change moved, e.g.

    ray_ready 9.6 | datasets_ready 13.3 | worker_process_started 21.0 | model_sharded 31.2 |
    first_epoch_done 39.4 | training_done 47.1 | test_scored 49.0 | fit_returned 51.5 | ...

The driver's and rank 0's moments are wall-clock times (`time.time()`); on one machine they
share a clock, across nodes they differ by the nodes' clock offset (NTP: milliseconds).
"""

from __future__ import annotations

import os
import sys
import time

import psutil


def process_started() -> float:
    """When this process started (seconds since the epoch, as `time.time()`).

    On Linux, from the process's start in clock ticks since boot (/proc/self/stat) and the
    boot clock: to 10 ms. psutil's `create_time` (the fallback elsewhere) adds those ticks to
    the boot time that /proc/stat rounds down to whole seconds, so on Linux it is up to 1 s
    early (0.47 s on the development machine), and every moment looked that much later.
    """
    if sys.platform.startswith("linux"):
        with open("/proc/self/stat") as stat:
            start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - age
    return psutil.Process().create_time()


class Timeline:
    """Named moments (seconds since the epoch), in the order they happened."""

    def __init__(self, **moments: float) -> None:
        self.moments: dict[str, float] = dict(moments)

    def mark(self, name: str) -> None:
        """Records `name` as now."""
        self.moments[name] = time.time()

    def update(self, moments: dict[str, float]) -> None:
        self.moments.update(moments)

    def since(self, origin: float) -> dict[str, float]:
        """Every moment as seconds after `origin`, earliest first."""
        return {name: round(t - origin, 2) for name, t in sorted(self.moments.items(), key=lambda kv: kv[1])}

    def format(self, origin: float) -> str:
        """One line: 'ray_ready 9.6 | datasets_ready 13.3 | ...' (seconds after `origin`)."""
        return " | ".join(f"{name} {t:.1f}" for name, t in self.since(origin).items())


class Stopwatch:
    """Seconds spent inside `with stopwatch:` blocks, summed (e.g. a loop's model forwards,
    apart from the waits between them)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __enter__(self) -> "Stopwatch":
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._started
