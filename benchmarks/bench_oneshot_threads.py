"""How the one-shot metrics' blocks share the two CPUs (issue 13, branch short10).

    python benchmarks/bench_oneshot_threads.py [--rows 1000000] [--classes 10]
        [--repeats 41] [--against PATH/TO/OTHER/src]

``negative_log_likelihood``, ``brier_score``, ``calibration_error`` and
``EvaluationState(classes).update`` of ``bench_evaluation``'s data (10^6 x 10 float32
probabilities: 10 blocks), each call's ``totals`` kernel calls noted (start, end,
thread and CPU, ``sched_getcpu``), the contenders interleaved, and with ``--against``
the same of a second copy of crossent (``bench_evaluation.against``) after each.  For
each contender, min and median of:

* wall: the call, ms (min / median / 90th percentile: a caller that waits for a
  descheduled pool thread shows in the upper quantiles under load; branch steal1);
* kernels: the sum of its kernel calls' durations, ms (what one thread would take);
* overlap: the share of the first kernel's start to the last one's end during which
  two kernel calls ran at once (1: always two blocks side by side, 0: one at a time);
* one CPU: the share of calls whose kernel calls all ran on one CPU;
* caller: the blocks read by the caller's thread.

On the 2-core AMD EPYC (a KVM guest) with nothing else running, main's one-shot
metrics mapped their blocks over the pool while the caller waited and, woken on the
waker's CPU, the pool's two threads often shared one CPU: ``bench_evaluation`` had the
NLL at 3.4x the read (its one-thread time), where ``EvaluationState.update`` (the caller
reads too, the pool's thread kept off its CPU) split its blocks.  Timings on a shared
machine are noisy; the overlap and the CPUs say what the wall clock cannot under load.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

import crossent
from bench_evaluation import against, data

from _machine import cpu_name, vector_width

_getcpu = ctypes.CDLL(None).sched_getcpu
_getcpu.restype, _getcpu.argtypes = ctypes.c_int, []


def noted(package: ModuleType, calls: list[tuple[int, int, float, float]]) -> None:
    """Wrap ``package``'s ``totals`` kernel so that each call appends (thread, CPU,
    start, end) to ``calls``."""
    kernels = package.calibration._row_kernels._kernels()
    kernel = kernels["totals"]

    def wrapped(*arguments: Any) -> Any:
        cpu, began = _getcpu(), time.perf_counter()
        flagged = kernel(*arguments)
        calls.append((threading.get_ident(), cpu, began, time.perf_counter()))
        return flagged

    kernels["totals"] = wrapped


def overlap(calls: list[tuple[int, int, float, float]]) -> float:
    """The share of the span of ``calls`` during which at least two ran at once."""
    events = sorted([(c[2], 1) for c in calls] + [(c[3], -1) for c in calls])
    running, last, both = 0, events[0][0], 0.0
    for at, step in events:
        if running >= 2:
            both += at - last
        running += step
        last = at
    span = events[-1][0] - events[0][0]
    return both / span if span > 0 else 0.0


def p90(values: tuple[float, ...]) -> float:
    """The 90th percentile of ``values`` (``statistics.quantiles``, exclusive)."""
    return statistics.quantiles(values, n=10)[-1]


def contenders(
    package: ModuleType, probs: np.ndarray, labels: np.ndarray
) -> dict[str, Callable[[], object]]:
    return {
        "negative_log_likelihood": lambda: package.negative_log_likelihood(probs, labels),
        "brier_score": lambda: package.brier_score(probs, labels),
        "calibration_error": lambda: package.calibration_error(probs, labels).value,
        "EvaluationState.update": lambda: package.EvaluationState(probs.shape[1]).update(
            probs, labels
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=41)
    parser.add_argument("--against", metavar="SRC", help="also the crossent under SRC")
    args = parser.parse_args()
    probs, labels = data(args.rows, args.classes)
    packages = {"": crossent}
    if args.against:
        packages[" (against)"] = against(args.against)
    calls: dict[str, list[tuple[int, int, float, float]]] = {}
    cases: dict[str, Callable[[], object]] = {}
    for mark, package in packages.items():
        calls[mark] = []
        noted(package, calls[mark])
        for name, call in contenders(package, probs, labels).items():
            cases[name + mark] = call
    for call in cases.values():  # compile, warm the pool
        call()
    rows: dict[str, list[tuple[float, ...]]] = {name: [] for name in cases}
    caller = threading.get_ident()
    for _ in range(args.repeats):
        for name, call in cases.items():
            mark = " (against)" if name.endswith(" (against)") else ""
            noted_calls = calls[mark]
            noted_calls.clear()
            began = time.perf_counter()
            call()
            wall = time.perf_counter() - began
            kernels = sum(c[3] - c[2] for c in noted_calls)
            cpus = {c[1] for c in noted_calls}
            mine = sum(1 for c in noted_calls if c[0] == caller)
            rows[name].append(
                (wall * 1e3, kernels * 1e3, overlap(noted_calls), len(cpus) == 1, mine)
            )
    print(
        f"machine: {cpu_name()}, {vector_width()}, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        f"{args.rows} x {args.classes} float32; min / median (/ p90) of {args.repeats} "
        "interleaved\n"
    )
    print("| contender | wall ms | kernels ms | overlap | one CPU | caller's blocks |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, values in rows.items():
        wall, kernels, share, one, mine = zip(*values, strict=True)
        print(
            f"| {name} | {min(wall):.2f} / {statistics.median(wall):.2f} / {p90(wall):.2f} "
            f"| {min(kernels):.2f} / {statistics.median(kernels):.2f} "
            f"| {min(share):.2f} / {statistics.median(share):.2f} "
            f"| {sum(one) / len(one):.2f} | {statistics.median(mine):.0f} |"
        )


if __name__ == "__main__":
    main()
