"""Measuring steps in-process: wall time, interleaved comparisons of several sides (`interleaved`, used by
every ``bench.perf`` command), peak resident memory (Linux), the machine's matmul rate."""

from __future__ import annotations

import ctypes
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass
class Timings:
    """Wall times (ms) per side: the warm-up calls (the first one cold) and the timed repeats."""

    warmup_ms: dict[str, list[float]]
    ms: dict[str, list[float]]

    def median(self, side: str) -> float:
        return statistics.median(self.ms[side])

    def min(self, side: str) -> float:
        return min(self.ms[side])

    @property
    def repeats(self) -> int:
        return len(next(iter(self.ms.values())))


def interleaved(
    steps: dict[str, Callable[[], object]],
    *,
    warmup: int = 1,
    repeats: int | None = None,
    budget_s: float = 0.0,
    least: int = 5,
    most: int = 200,
    sync: Callable[[], None] = lambda: None,
) -> Timings:
    """Time every side of a comparison alike: ``warmup`` calls of each, then ``repeats`` rounds in
    which each side is called once, in reversed order every other round, so that the slow spells of
    a shared machine and the cache left by the previous call fall on every side alike.

    ``repeats`` None: as many rounds as ``budget_s`` holds at the last warm-up round's pace, clamped
    to ``[least, most]``. ``sync`` runs inside each timed call (e.g. ``torch.cuda.synchronize``).
    """
    if warmup < 1 and repeats is None:
        raise ValueError("a budget needs at least one warm-up round to set the number of repeats")

    def timed(step: Callable[[], object]) -> float:
        return timed_ms(lambda: (step(), sync()))

    warmup_ms: dict[str, list[float]] = {side: [] for side in steps}
    for _ in range(warmup):
        for side, step in steps.items():
            warmup_ms[side].append(timed(step))
    if repeats is None:
        round_ms = sum(times[-1] for times in warmup_ms.values())
        repeats = int(min(most, max(least, budget_s * 1e3 / max(round_ms, 1e-3))))
    ms: dict[str, list[float]] = {side: [] for side in steps}
    for index in range(repeats):
        for side in list(steps) if index % 2 == 0 else reversed(list(steps)):
            ms[side].append(timed(steps[side]))
    return Timings(warmup_ms, ms)
