"""Helpers shared by the benchmark scripts: the machine's name and peak memory of a call."""

from __future__ import annotations

import platform
import tracemalloc
from collections.abc import Callable

__all__ = ["cpu_name", "peak_mib"]


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, or what platform knows."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_mib(fn: Callable[[], object]) -> float:
    """Peak memory allocated during ``fn()`` as tracemalloc sees it (NumPy included), MiB."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20
