"""Helpers shared by the benchmark scripts: the machine's name; time and peak memory of a call."""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import socket
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Hashable, Mapping
from types import ModuleType
from typing import TypeVar

__all__ = [
    "ab_arguments",
    "ab_row",
    "cpu_name",
    "emulated_avx2",
    "gloo_world_of_one",
    "interleaved_thread_times",
    "interleaved_wall_medians",
    "modules_beside",
    "peak_mib",
    "timed_seconds",
    "torch_allocator_peak_bytes",
    "vector_width",
    "wall_turn",
]


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


def vector_width() -> str:
    """The widest SIMD extension the CPU reports, and LLVM's name for the CPU when known.

    From /proc/cpuinfo's flags; LLVM's CPU name (what Numba compiles for, e.g.
    ``emeraldrapids``, ``znver3``) when llvmlite is installed: on Intel's AVX-512 cores
    LLVM prefers 256-bit vectors unless a kernel asks for wider ones. Under
    ``emulate_avx2.sh`` (``CROSSENT_EMULATED_AVX2`` set): "AVX2 (emulated on ...)", with
    what each library says it runs (:func:`emulated_avx2`).
    """
    width = "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line for line in info if line.startswith("flags")), "").split()
    except OSError:
        flags = []
    for flag, name in (("avx512f", "AVX-512 (512 bit)"), ("avx2", "AVX2 (256 bit)")):
        if flag in flags:
            width = name
            break
    else:
        if flags:
            width = "SSE/NEON (128 bit)"
    if os.environ.get("CROSSENT_EMULATED_AVX2"):
        return f"AVX2 (emulated on {cpu_name()}, {width}: {emulated_avx2()})"
    try:
        from llvmlite import binding
    except ImportError:
        return width
    return f"{width}, LLVM cpu {binding.get_host_cpu_name()}"


def emulated_avx2() -> str:
    """What NumPy, PyTorch and Numba say they run (the knobs of ``emulate_avx2.sh``).

    NumPy: the target of its float64 ``exp`` loop (``X86_V3``: AVX2; ``X86_V4`` or
    ``AVX512*``: the knob did not take); PyTorch (when imported): its ATen CPU
    capability; Numba (when installed): the CPU name and whether its features keep
    ``avx512f``.
    """
    parts = []
    try:
        from numpy.lib.introspect import opt_func_info

        exp = opt_func_info(func_name="^exp$", signature="float64")["exp"]["dd"]["current"]
        parts.append(f"NumPy float64 exp {exp}")
    except (ImportError, KeyError, TypeError):
        parts.append("NumPy float64 exp target unknown")
    torch = sys.modules.get("torch")
    if torch is not None:
        parts.append(f"torch {torch.backends.cpu.get_cpu_capability()}")
    try:
        import numba
    except ImportError:
        return ", ".join(parts)
    features = numba.config.CPU_FEATURES or ""
    avx512 = "+avx512f" in features or numba.config.CPU_FEATURES is None
    parts.append(f"Numba {numba.config.CPU_NAME or 'host'}{' with AVX-512' if avx512 else ''}")
    return ", ".join(parts)


def _resident_kib() -> tuple[int, int] | None:
    """(current, peak) resident set size in KiB from /proc/self/status, if readable."""
    try:
        with open("/proc/self/status") as status:
            fields = dict(line.split(":", 1) for line in status)
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    except (OSError, KeyError, ValueError):
        return None


def _reset_peak_resident() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def peak_mib(fn: Callable[[], object]) -> float:
    """Peak extra memory of ``fn()`` in MiB.

    The larger of tracemalloc's peak (NumPy's heap allocations) and the rise of the
    peak resident set size, which also sees anonymous mappings and native
    allocations such as PyTorch's.
    """
    resident = _resident_kib() if _reset_peak_resident() else None
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    after = _resident_kib()
    if resident is None or after is None:
        return traced
    return max(traced, (after[1] - resident[0]) / 1024)


def torch_allocator_peak_bytes(fn: Callable[[], object]) -> int | None:
    """Peak bytes held by PyTorch's CPU allocator during ``fn()``, above its level at the
    start, from the profiler's allocation events.

    ``fn`` runs once under ``torch.profiler.profile(profile_memory=True)``, whose events
    each carry the allocator's running total (``total_allocated``) after them: the peak
    is the largest total less the total before the first event (its total less its
    size). Unlike :func:`peak_mib`'s rise of the resident set size it sees the live
    tensors only, not the heap that glibc keeps after a free, nor NumPy's arrays (the
    profiler slows the call: time it apart). None where the profiler's event tree (the
    private ``torch._C._profiler._EventType``) is missing or recorded no allocation.
    """
    from torch.profiler import ProfilerActivity, profile

    try:
        from torch._C._profiler import _EventType
    except ImportError:  # a private name of the profiler
        return None
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    totals: list[tuple[int, int, int]] = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation:
            fields = node.extra_fields
            totals.append((node.start_time_ns, fields.alloc_size, fields.total_allocated))
        stack.extend(node.children)
    if not totals:
        return None
    totals.sort()
    start = totals[0][2] - totals[0][1]
    return max(total for _, _, total in totals) - start


def timed_seconds(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


Key = TypeVar("Key", bound=Hashable)


def interleaved_thread_times(
    cases: Mapping[Key, Callable[[], object]], repeats: int
) -> dict[Key, list[float]]:
    """Each case's thread CPU seconds in ``repeats`` rounds, after one warm-up call each
    (compilation, page faults); within a round the cases run in turn, so that the load
    of a shared machine drifts over all of them alike."""
    for fn in cases.values():
        fn()
    seconds: dict[Key, list[float]] = {key: [] for key in cases}
    for _ in range(repeats):
        for key, fn in cases.items():
            start = time.thread_time()
            fn()
            seconds[key].append(time.thread_time() - start)
    return seconds


def interleaved_wall_medians(
    calls: Mapping[Key, Callable[[], object]], turns: int
) -> dict[Key, float]:
    """Each call's median wall-clock seconds over ``turns`` rounds: in a round every call
    in turn, after a 0.3 s pause, three times, the first untimed (so that one call's
    freed memory or cache state does not land on the next one's first call)."""
    seconds: dict[Key, list[float]] = {key: [] for key in calls}
    for _ in range(turns):
        for key, fn in calls.items():
            seconds[key].extend(wall_turn(fn))
    return {key: statistics.median(times) for key, times in seconds.items()}


def wall_turn(fn: Callable[[], object]) -> list[float]:
    """One turn of :func:`interleaved_wall_medians`: after a 0.3 s pause, three calls of
    ``fn``; the wall-clock seconds of the last two."""
    time.sleep(0.3)
    fn()
    return [timed_seconds(fn) for _ in range(2)]


def ab_row(case: str, base: list[float], this: list[float], names: tuple[str, str]) -> str:
    """One Markdown row of an A/B table: each side's minimum and median seconds (its
    ``names``), and the ratio of the minima (this / base)."""
    row = f"{names[0]} min / med {min(base):.4f} / {statistics.median(base):.4f} | "
    row += f"{names[1]} min / med {min(this):.4f} / {statistics.median(this):.4f} | "
    return f"| {case} | {row}{min(this) / min(base):.3f} |"


def ab_arguments(doc: str) -> argparse.Namespace:
    """The options of an A/B script of ``crossent.torch`` modules: ``--base`` (the other
    tree's ``src`` folder) and ``--rounds``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--base", required=True, help="the other tree's src folder")
    parser.add_argument("--rounds", type=int, default=15)
    return parser.parse_args()


def modules_beside(base: str, *names: str) -> list[ModuleType]:
    """The other tree's ``crossent.torch`` modules ``names`` (under the ``src`` folder
    ``base``), each loaded as ``crossent.torch.<name>_base`` beside this tree's (their
    relative imports resolve to this tree's modules), for A/B scripts in one process."""
    loaded = []
    for name in names:
        path = os.path.join(base, "crossent", "torch", f"{name}.py")
        spec = importlib.util.spec_from_file_location(f"crossent.torch.{name}_base", path)
        if spec is None or spec.loader is None:
            raise SystemExit(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        loaded.append(module)
    return loaded


def gloo_world_of_one() -> None:
    """A ``torch.distributed`` gloo group of this process alone, on a free loopback port."""
    import torch.distributed as dist

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
