"""What the machine can do at most, measured in the same run as the benchmark it bounds."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

import torch


def matmul_peak_flops(threads: int, n: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    """FLOP/s of a large float32 matmul at `threads` threads (best of `repeats`); on CUDA, of
    an 8192-square one (TF32 off, as the benchmark's dense part runs)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    n = 8192 if device == "cuda" else n
    try:
        a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        torch.matmul(a, b)
        best = min(_timed(lambda: torch.matmul(a, b), device) for _ in range(repeats))
    finally:
        torch.set_num_threads(previous)
    return 2 * n**3 / best


def memory_bandwidth(threads: int, megabytes: int = 512, repeats: int = 5, device: str = "cpu") -> float:
    """Bytes/s of a large tensor copy (read + write counted) at `threads` threads; on CUDA,
    the HBM bandwidth."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        src = torch.empty(megabytes * 2**20 // 4, device=device).uniform_()
        dst = torch.empty_like(src)
        dst.copy_(src)
        best = min(_timed(lambda: dst.copy_(src), device) for _ in range(repeats))
    finally:
        torch.set_num_threads(previous)
    return 2 * src.numel() * 4 / best


def _timed(fn, device: str = "cpu") -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def synchronize(device: str | torch.device) -> None:
    """Waits for queued kernels, so that wall-clock timings on CUDA time the work itself."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


@dataclass(frozen=True)
class CpuSnapshot:
    """Machine-wide busy and total CPU seconds (/proc/stat) and this process's CPU seconds."""

    wall_s: float
    machine_busy_s: float
    machine_total_s: float
    process_s: float

    @classmethod
    def take(cls) -> "CpuSnapshot":
        with open("/proc/stat") as stat:
            fields = [float(x) for x in stat.readline().split()[1:]]
        ticks = os.sysconf("SC_CLK_TCK")
        idle = fields[3] + fields[4]  # idle + iowait
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return cls(time.perf_counter(), (sum(fields[:8]) - idle) / ticks, sum(fields[:8]) / ticks,
                   usage.ru_utime + usage.ru_stime)


def cores_busy(start: CpuSnapshot, end: CpuSnapshot) -> dict[str, float]:
    """Average cores in use between two snapshots: on the whole machine and in this process
    (all its threads: the train step and Ray Data's prefetch/collate threads)."""
    wall = max(end.wall_s - start.wall_s, 1e-9)
    total = max(end.machine_total_s - start.machine_total_s, 1e-9)
    cores = os.cpu_count() or 1
    return {"machine_cores_busy": cores * (end.machine_busy_s - start.machine_busy_s) / total,
            "process_cores_busy": (end.process_s - start.process_s) / wall,
            "cores": cores}
