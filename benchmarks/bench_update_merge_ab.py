"""The Python after ``EvaluationState.update``'s kernel calls (issue 13, branch upd12).

    cd benchmarks
    PYTHONPATH=../src:. python bench_update_merge_ab.py [--rows 1000000] [--classes 10]
        [--repeats 201] [--against PATH/TO/OTHER/src]

A batch of stored float probabilities in several blocks (``_summaries._stacked_totals``)
ends with ``EvaluationState._add_blocks``: the blocks' sums added in block order and
their most surprising rows merged into the state's (one compiled call since branch
upd15, ``_row_kernels.merge_blocks``; ``_add_found`` before).  This times that
step alone on the blocks of one real batch (``bench_evaluation``'s data), hot in cache,
on a fresh state, interleaved with the same step of a second copy of crossent
(``--against``): the thread's CPU time, min and median, in microseconds.  Then whole
``update`` calls (``entropy=False``, where the Python is the larger share), interleaved:
the process's CPU time and the wall clock, median.  State the load average with the
numbers; after the kernel's pass the same Python runs in cold caches and takes several
times its hot time (``bench_update_stages.py --wall``: "last block end to return").
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import time
from collections.abc import Callable
from types import ModuleType

from bench_evaluation import against, data

from _machine import cpu_name, vector_width


def merge_step(package: ModuleType, probs, labels) -> Callable[[], object]:  # type: ignore[no-untyped-def]
    """``_add_blocks`` of the batch's blocks on a fresh state (``package``'s crossent)."""
    name = package.__name__
    state_module = importlib.import_module(f"{name}.calibration._state")
    summaries = importlib.import_module(f"{name}.calibration._summaries")
    k = probs.shape[1]
    state = package.EvaluationState(k, entropy=False)
    predictions = state_module.as_predictions(
        probs, labels, form="probs", validate=True, first_row=0, defer=True, rows=False
    )
    bounds = summaries._block_bounds(predictions)
    request = state._request(state.spec.bins, rows=summaries._widest_block(bounds))
    blocks = summaries._stacked_totals(predictions, request, bounds)

    def step() -> None:
        fresh = package.EvaluationState(k, entropy=False)
        fresh._add_blocks(blocks, bounds, 0)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=201)
    parser.add_argument("--against", metavar="SRC", help="also time the crossent under SRC")
    args = parser.parse_args()
    import crossent

    packages = {"this": crossent}
    if args.against:
        packages["against"] = against(args.against)
    probs, labels = data(args.rows, args.classes)
    steps = {mark: merge_step(p, probs, labels) for mark, p in packages.items()}
    fresh = {
        mark: (lambda p=p: p.EvaluationState(args.classes, entropy=False))
        for mark, p in packages.items()
    }
    updates = {
        mark: (lambda p=p: p.EvaluationState(args.classes, entropy=False).update(probs, labels))
        for mark, p in packages.items()
    }
    for f in (*steps.values(), *fresh.values(), *updates.values()):
        f()
    merge: dict[str, list[float]] = {mark: [] for mark in packages}
    made: dict[str, list[float]] = {mark: [] for mark in packages}
    for _ in range(args.repeats):
        for mark in packages:
            start = time.thread_time()
            steps[mark]()
            merge[mark].append(time.thread_time() - start)
            start = time.thread_time()
            fresh[mark]()
            made[mark].append(time.thread_time() - start)
    cpu: dict[str, list[float]] = {mark: [] for mark in packages}
    wall: dict[str, list[float]] = {mark: [] for mark in packages}
    for _ in range(max(11, args.repeats // 10)):
        for mark in packages:
            start, began = time.process_time(), time.perf_counter()
            updates[mark]()
            wall[mark].append(time.perf_counter() - began)
            cpu[mark].append(time.process_time() - start)
    print(
        f"machine: {cpu_name()}, {vector_width()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"input: {args.rows} x {args.classes} float32 probabilities\n")
    print(
        "| tree | _add_blocks us, min | median | (the fresh state's own us) | "
        "update CPU ms, median | update wall ms, median |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for mark in packages:
        m = [t * 1e6 for t in merge[mark]]
        f = [t * 1e6 for t in made[mark]]
        print(
            f"| {mark} | {min(m):.1f} | {statistics.median(m):.1f} | "
            f"{statistics.median(f):.1f} | {statistics.median(cpu[mark]) * 1e3:.3f} | "
            f"{statistics.median(wall[mark]) * 1e3:.3f} |"
        )


if __name__ == "__main__":
    main()
