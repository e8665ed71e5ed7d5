"""Measuring steps in-process: wall time, peak resident memory (Linux), the machine's matmul rate."""

from __future__ import annotations

import ctypes
import statistics
import time
from collections.abc import Callable

import torch


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def pin_malloc() -> None:
    libc = _libc()
    if libc is not None:
        libc.mallopt(-3, 1 << 16)  # M_MMAP_THRESHOLD = 64 KiB (and no dynamic growth)
        libc.mallopt(-1, 1 << 17)  # M_TRIM_THRESHOLD = 128 KiB
        libc.malloc_trim(0)  # hand back what the heap holds free now


def _proc_status_kb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return float(line.split()[1])
    return float("nan")


def peak_memory_mb(step: Callable[[], None]) -> float:
    """Peak resident-memory increase (MiB) of one call of ``step`` (Linux; see the module docstring)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak-RSS mark
    except OSError:
        return float("nan")
    before = _proc_status_kb("VmRSS:")
    step()
    return (_proc_status_kb("VmHWM:") - before) / 1024


def available_gb() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - start)
    return 2.0 * size**3 / statistics.median(times) / 1e9


def timed_ms(step: Callable[[], None]) -> float:
    start = time.perf_counter()
    step()
    return (time.perf_counter() - start) * 1e3
