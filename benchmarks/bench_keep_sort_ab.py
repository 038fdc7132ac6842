"""Issue 13: the ``totals`` kernel's most surprising rows for a large ``keep`` (sorted
and merged a chunk at a time above 32 places) against another tree's, interleaved.

    python benchmarks/bench_keep_sort_ab.py --against /tmp/main/src [--repeats 5]

Cases (``EvaluationState.update``, one call, CPU seconds by ``time.process_time``):

* keep all: 70000 x 3 float64 rows, ``keep=70000`` (tests/calibration/
  test_issue13_keep_unbounded.py's block): insertion shifted O(rows x keep) places.
* default keep: 10^6 x 10 float32 rows, ``keep=10`` (the insertion path, unchanged).
* keep 33, 100 and 10000: 10^6 x 10 float32 rows (sort and merge, few rows a chunk
  once every place is filled); "rising": keep 33 and 100 of the same rows ordered by
  rising surprisal (every row enters: the worst case of both ways).

The data (softmax of Gaussian logits, labels drawn at random) are built before any
timer; every case runs once untimed (compilation), then the trees alternate call by
call.  Prints each case's best and median CPU seconds per tree.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from _against import load_tree


def _data(rows: int, classes: int, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(rows, classes)) * 2
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (probs / probs.sum(axis=1, keepdims=True)).astype(dtype), rng.integers(0, classes, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", required=True, help="the other tree's src")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    trees = {
        "this": load_tree("src", "crossent_this"),
        "against": load_tree(args.against, "crossent_against"),
    }
    small = _data(70_000, 3, np.float64)
    large = _data(1_000_000, 10, np.float32)
    p_label = large[0][np.arange(large[0].shape[0]), large[1]]
    rising = np.argsort(-p_label, kind="stable")  # every row above the kept ones
    worst = (large[0][rising], large[1][rising])
    cases = {
        "keep all, 70000 x 3": (small, 3, 70_000),
        "keep 10, 10^6 x 10": (large, 10, 10),
        "keep 33, 10^6 x 10": (large, 10, 33),
        "keep 33, rising": (worst, 10, 33),
        "keep 100, 10^6 x 10": (large, 10, 100),
        "keep 100, rising": (worst, 10, 100),
        "keep 10000, 10^6 x 10": (large, 10, 10_000),
    }
    times: dict[tuple[str, str], list[float]] = {}
    for case, ((probs, labels), classes, keep) in cases.items():
        for package in trees.values():
            package.EvaluationState(classes, keep=keep).update(probs, labels)  # compile
        for _ in range(args.repeats):
            for tree, package in trees.items():
                state = package.EvaluationState(classes, keep=keep)
                start = time.process_time()
                state.update(probs, labels)
                times.setdefault((case, tree), []).append(time.process_time() - start)
        this = trees["this"].EvaluationState(classes, keep=keep).update(probs, labels)
        other = trees["against"].EvaluationState(classes, keep=keep).update(probs, labels)
        assert this.compute().most_surprising == other.compute().most_surprising, case
    print(f"{'case':24} {'tree':8} {'best CPU s':>11} {'median':>9}")
    for (case, tree), values in times.items():
        best, median = min(values), statistics.median(values)
        print(f"{case:24} {tree:8} {best:11.4f} {median:9.4f}")


if __name__ == "__main__":
    main()
