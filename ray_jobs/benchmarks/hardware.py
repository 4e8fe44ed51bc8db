"""What the machine can do at most, measured in the same run as the benchmark it bounds."""

from __future__ import annotations

import time

import torch


def matmul_peak_flops(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a large float32 matmul at `threads` threads (best of `repeats`)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.matmul(a, b)
        best = min(_timed(lambda: torch.matmul(a, b)) for _ in range(repeats))
    finally:
        torch.set_num_threads(previous)
    return 2 * n**3 / best


def memory_bandwidth(threads: int, megabytes: int = 512, repeats: int = 5) -> float:
    """Bytes/s of a large tensor copy (read + write counted) at `threads` threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        src = torch.empty(megabytes * 2**20 // 4).uniform_()
        dst = torch.empty_like(src)
        dst.copy_(src)
        best = min(_timed(lambda: dst.copy_(src)) for _ in range(repeats))
    finally:
        torch.set_num_threads(previous)
    return 2 * src.numel() * 4 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
