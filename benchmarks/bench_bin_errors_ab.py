"""The bins' rounding errors (issue 13, branches evalstate1 and evalstate2): CPU time of
``calibration_error`` and ``EvaluationState.update`` (with and without the entropy) of
this tree against two other trees, interleaved in one process (the order rotated each
round), 10^6 x 10 softmax probabilities.

    PYTHONPATH=src python benchmarks/bench_bin_errors_ab.py \\
        --against /tmp/main/src --against /tmp/old/src --dtype float32 --rounds 40

Each tree's ``crossent`` is imported from a copy renamed ``crossent_ab<i>`` (in a
temporary folder, as ``bench_evaluation.py --against``).  Per call: the CPU time
(``time.process_time``, every thread) of 3 calls over 3; printed: the minimum and median
per tree, and each median over the last tree's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import crossent
from _against import load_tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", action="append", default=[], metavar="SRC")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    trees: dict[str, Any] = {"this tree": crossent}
    for i, source in enumerate(args.against):
        trees[source] = load_tree(source, f"crossent_ab{i}")
    rng = np.random.default_rng(0)
    n, k = 10**6, 10
    z = rng.standard_normal((n, k)) * 2
    p = np.exp(z - z.max(axis=1, keepdims=True)).astype(args.dtype)
    probs = p / p.sum(axis=1, keepdims=True)
    labels = rng.integers(0, k, n)
    ops: dict[str, Callable[[Any], object]] = {
        "calibration_error": lambda m: m.calibration_error(probs, labels).value,
        "update": lambda m: m.EvaluationState(k).update(probs, labels),
        "update(entropy=False)": lambda m: m.EvaluationState(k, entropy=False).update(
            probs, labels
        ),
    }
    for module in trees.values():  # compiled or loaded, and warm
        for op in ops.values():
            op(module)
            op(module)
    names = list(trees)
    times: dict[tuple[str, str], list[float]] = {(o, t): [] for o in ops for t in names}
    print("load average", os.getloadavg())
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name, op in ops.items():
            for tree in order:
                start = time.process_time()
                for _ in range(3):
                    op(trees[tree])
                times[(name, tree)].append((time.process_time() - start) / 3)
    print("load average", os.getloadavg())
    for name in ops:
        base = statistics.median(times[(name, names[-1])])
        cells = []
        for tree in names:
            values = times[(name, tree)]
            median = statistics.median(values)
            cells.append(
                f"{tree}: min {min(values) * 1e3:.2f} med {median * 1e3:.2f} ms"
                f" ({median / base:.3f}x)"
            )
        print(args.dtype, name, " | ".join(cells))


if __name__ == "__main__":
    main()
