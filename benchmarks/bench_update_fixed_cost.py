"""``EvaluationState.update``'s fixed cost a call and its cost a row (issue 13, branch upd13).

    python benchmarks/bench_update_fixed_cost.py [--rows 10000 100000 200000 1000000]
        [--classes 10] [--repeats 41] [--entropy] [--against PATH/TO/OTHER/src]
        [--ends | --handoffs]

For each row count, ``EvaluationState(classes, entropy=...).update(probs, labels)`` on
``bench_evaluation``'s float32 probabilities (a fresh state a call, as
``bench_evaluation`` times it), after a pass over 48 MB of other memory (the caches as a
caller's own work leaves them): wall ms min and median, and the process's CPU ms median
(both threads), interleaved with ``--against``'s copy of crossent.  Up to
``_inputs._BLOCK_ELEMENTS`` (2**20) entries the rows are one block, read by the caller
alone (``map_totals``); above, several blocks read by the caller and the pool
(``_summaries._stacked_totals``): the script fits a line (least squares on the minima)
through each path's sizes, its intercept the fixed cost a call and its slope the cost a
row.  Then the "Python" rows: the same calls with every block read as empty (the
kernel's arguments formed as usual), so that what remains is the Python around the
kernel, the pool's hand-off and the state's adds.  With ``--ends``, the several-block
calls' two ends instead: from the call to the first block's read, and from the last
thread's last block (its reader's end, in that thread) to the call's return.  With
``--handoffs`` (branch upd14), the steps around the two threads' kernels: the call to
the pool's work handed out (``_summaries.start_beside``), the handing out, the caller's
first block, the pool's thread running the work after it, its first block, the wake of
the caller after the pool's last block, and the rest of the call.

On a shared machine run it under ``chrt -f 10`` (these threads first, as on a quiet
machine; the wall clock is then the call's own) and state the load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import crossent
from bench_evaluation import against, data

from _machine import cpu_name, vector_width


def _stub_reader(package: Any) -> Callable[[], None]:
    """Make ``package``'s stacked reader read every block as empty; returns the undo."""
    kernels = package.calibration._row_kernels
    original = kernels.blocks_reader

    def reader(values, labels, bounds, out, settings):  # type: ignore[no-untyped-def]
        original(values, labels, bounds, out, settings)  # (the arguments as usual)
        out.found[:] = -1

        def read(blocks):  # type: ignore[no-untyped-def]
            for _ in blocks:
                pass

        return read

    kernels.blocks_reader = reader

    def undo() -> None:
        kernels.blocks_reader = original

    return undo


def _noting_reader(package: Any, notes: list[tuple[str, float]]) -> Callable[[], None]:
    """Make ``package``'s stacked reader note each thread's first block and end."""
    kernels = package.calibration._row_kernels
    original = kernels.blocks_reader

    def reader(*args):  # type: ignore[no-untyped-def]
        read_blocks = original(*args)

        def read(blocks):  # type: ignore[no-untyped-def]
            def noted():  # type: ignore[no-untyped-def]
                for block in blocks:
                    notes.append(("block", time.perf_counter()))
                    yield block
                notes.append(("end", time.perf_counter()))

            return read_blocks(noted())

        return read

    kernels.blocks_reader = reader

    def undo() -> None:
        kernels.blocks_reader = original

    return undo


def ends(packages: dict[str, Any], rows: int, classes: int, repeats: int, entropy: bool) -> None:
    """``--ends``: the call to its first block, the last block's end to the return."""
    flush = np.ones(6_000_000)
    probs, labels = data(rows, classes)
    notes: list[tuple[str, float]] = []
    undo = [_noting_reader(p, notes) for p in packages.values()]
    out: dict[tuple[str, str], list[float]] = {}
    for package in packages.values():
        package.EvaluationState(classes, entropy=entropy).update(probs, labels)
    for _ in range(repeats):
        for name, package in packages.items():
            flush += 1.0
            state = package.EvaluationState(classes, entropy=entropy)
            notes.clear()
            began = time.perf_counter()
            state.update(probs, labels)
            ended = time.perf_counter()
            first = min(t for what, t in notes if what == "block")
            last = max(t for what, t in notes if what == "end")
            out.setdefault((name, "call to its first block"), []).append(first - began)
            out.setdefault((name, "last block's end to return"), []).append(ended - last)
            out.setdefault((name, "whole call"), []).append(ended - began)
    for fn in undo:
        fn()
    print(f"{rows} x {classes}, wall us, min and median of {repeats}:\n")
    print("| what | crossent | min | median |\n|---|---|---:|---:|")
    for (name, what), values in out.items():
        print(
            f"| {what} | {name} | {min(values) * 1e6:.1f} | {statistics.median(values) * 1e6:.1f} |"
        )


def _noting_handoffs(package: Any, notes: list[tuple[str, float]]) -> Callable[[], None]:
    """Note, in ``notes``, each kernel call's start and end by thread (the caller's or
    not), the pool's work handed out (``_summaries.start_beside``'s call and return),
    the work's start in its thread and the caller's wait (``_NextBlocks.stragglers``'s
    call and return); returns the undo."""
    kernels, summaries = package.calibration._row_kernels, package.calibration._summaries
    original_kernels, original_start = kernels._kernels, summaries.start_beside
    original_wait = summaries._NextBlocks.stragglers
    clock = time.perf_counter

    def noted_kernels() -> dict[str, Any]:
        found = dict(original_kernels())
        kernel = found["totals"]

        def totals(*args: Any) -> Any:
            mine = threading.current_thread() is threading.main_thread()
            notes.append(("caller>" if mine else "pool>", clock()))
            flagged = kernel(*args)
            notes.append(("caller<" if mine else "pool<", clock()))
            return flagged

        found["totals"] = totals
        return found

    def start(work: Callable[[], object], parts: int) -> Any:
        def noted_work() -> object:
            notes.append(("pool run", clock()))
            return work()

        notes.append(("hand out>", clock()))
        started = original_start(noted_work, parts)
        notes.append(("hand out<", clock()))
        return started

    def wait(self: Any, began: float) -> Any:
        notes.append(("wait>", clock()))
        stolen = original_wait(self, began)
        notes.append(("wait<", clock()))
        return stolen

    kernels._kernels, summaries.start_beside = noted_kernels, start
    summaries._NextBlocks.stragglers = wait

    def undo() -> None:
        kernels._kernels, summaries.start_beside = original_kernels, original_start
        summaries._NextBlocks.stragglers = original_wait

    return undo


def handoffs(
    packages: dict[str, Any], rows: int, classes: int, repeats: int, entropy: bool
) -> None:
    """``--handoffs``: the several-block call's steps around the two threads' kernels."""
    flush = np.ones(6_000_000)
    probs, labels = data(rows, classes)
    notes: list[tuple[str, float]] = []
    undo = [_noting_handoffs(p, notes) for p in packages.values()]
    out: dict[tuple[str, str], list[float]] = {}
    for package in packages.values():
        package.EvaluationState(classes, entropy=entropy).update(probs, labels)
    for _ in range(repeats):
        for name, package in packages.items():
            flush += 1.0
            state = package.EvaluationState(classes, entropy=entropy)
            notes.clear()
            began = time.perf_counter()
            state.update(probs, labels)
            ended = time.perf_counter()
            at: dict[str, list[float]] = {}
            for what, t in notes:
                at.setdefault(what, []).append(t)
            if "pool>" not in at or "wait<" not in at:
                continue  # (the pool's thread read no block: nothing to split)
            steps = {
                "call to the work handed out": at["hand out>"][0] - began,
                "handing out": at["hand out<"][0] - at["hand out>"][0],
                "then the caller's first block": at["caller>"][0] - at["hand out<"][0],
                "caller's first block to the pool's run": at["pool run"][0] - at["caller>"][0],
                "pool's run to its first block": at["pool>"][0] - at["pool run"][0],
                "pool's last block end to the caller's wake": at["wait<"][0] - at["pool<"][-1],
                "caller's wake to the return": ended - at["wait<"][0],
                "whole call": ended - began,
            }
            for what, seconds in steps.items():
                out.setdefault((name, what), []).append(seconds)
    for fn in undo:
        fn()
    print(f"{rows} x {classes}, wall us, min and median of the calls whose pool read a block:\n")
    print("| step | crossent | calls | min | median |\n|---|---|---:|---:|---:|")
    for what in dict.fromkeys(w for _, w in out):
        for name in packages:
            values = out.get((name, what), [])
            if values:
                print(
                    f"| {what} | {name} | {len(values)} | {min(values) * 1e6:.1f} | "
                    f"{statistics.median(values) * 1e6:.1f} |"
                )


def measure(
    packages: dict[str, Any], rows: list[int], classes: int, repeats: int, entropy: bool
) -> dict[tuple[str, int], tuple[list[float], list[float]]]:
    """(wall seconds, CPU seconds) of each package's update at each row count."""
    flush = np.ones(6_000_000)
    inputs = {n: data(n, classes) for n in rows}
    out: dict[tuple[str, int], tuple[list[float], list[float]]] = {}
    for n, (probs, labels) in inputs.items():
        for package in packages.values():  # (compilation, first touches)
            package.EvaluationState(classes, entropy=entropy).update(probs, labels)
        for _ in range(repeats):
            for name, package in packages.items():
                flush += 1.0
                state = package.EvaluationState(classes, entropy=entropy)
                wall, cpu = time.perf_counter(), time.process_time()
                state.update(probs, labels)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                walls, cpus = out.setdefault((name, n), ([], []))
                walls.append(wall)
                cpus.append(cpu)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[10_000, 100_000, 200_000, 1_000_000]
    )
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=41)
    parser.add_argument("--entropy", action="store_true", help="the default state (entropy)")
    parser.add_argument("--against", help="another crossent's src folder, interleaved")
    parser.add_argument("--ends", action="store_true", help="the calls' two ends (last --rows)")
    parser.add_argument(
        "--handoffs",
        action="store_true",
        help="the steps around the threads' kernels (last --rows)",
    )
    args = parser.parse_args(argv)
    packages: dict[str, Any] = {"this": crossent}
    if args.against:
        packages["against"] = against(args.against)
    load = os.getloadavg()
    print(
        f"machine: {cpu_name()}, {vector_width()}, {os.cpu_count()} cores, load "
        f"{load[0]:.2f}; crossent from {os.path.dirname(crossent.__file__)}"
        + (f", against {args.against}" if args.against else "")
    )
    print(
        f"input: float32 probabilities x {args.classes} classes, entropy={args.entropy}; "
        f"{args.repeats} interleaved calls, each after a 48 MB pass\n"
    )
    limit = 1 << 20  # _inputs._BLOCK_ELEMENTS
    if args.ends:
        ends(packages, args.rows[-1], args.classes, args.repeats, args.entropy)
        return 0
    if args.handoffs:
        handoffs(packages, args.rows[-1], args.classes, args.repeats, args.entropy)
        return 0
    for stubbed in (False, True):
        undo = [_stub_reader(p) for p in packages.values()] if stubbed else []
        results = measure(packages, args.rows, args.classes, args.repeats, args.entropy)
        for fn in undo:
            fn()
        title = "Python only (blocks read as empty)" if stubbed else "whole calls"
        print(f"{title}:\n")
        print("| rows | blocks | crossent | wall ms min | wall ms median | CPU ms median |")
        print("|---:|---|---|---:|---:|---:|")
        for n in args.rows:
            for name in packages:
                walls, cpus = results[(name, n)]
                path = "one" if n * args.classes <= limit else "several"
                print(
                    f"| {n} | {path} | {name} | {min(walls) * 1e3:.3f} | "
                    f"{statistics.median(walls) * 1e3:.3f} | {statistics.median(cpus) * 1e3:.3f} |"
                )
        if not stubbed:
            for name in packages:
                for path, sizes in (
                    ("one block", [n for n in args.rows if n * args.classes <= limit]),
                    ("several blocks", [n for n in args.rows if n * args.classes > limit]),
                ):
                    if len(sizes) < 2:
                        continue
                    minima = [min(results[(name, n)][0]) for n in sizes]
                    slope, intercept = np.polyfit(sizes, minima, 1)
                    print(
                        f"\n{name}, {path}: wall min = {intercept * 1e3:.3f} ms + "
                        f"{slope * 1e9:.2f} ns a row"
                    )
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
