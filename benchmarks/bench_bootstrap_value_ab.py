"""The calibration error's bootstrap interval, and the report, tree against tree (issue 13).

    python benchmarks/bench_bootstrap_value_ab.py --against OTHER/src [--rounds 5]
        [--rows 1000000] [--classes 10] [--report]

``bootstrap_interval("calibration_error", x, labels, resamples=R)`` (15 equal-width
bins, top label, L1) of float32 probabilities and float32 logits of ``--rows`` x
``--classes`` (softmax of N(0, 2^2) scores, labels drawn from it), for R = 1 (the
value's cost dominates) and R = 200; with ``--report``, ``crossent.report(logits,
labels, form="logits", resamples=200)`` too.  This tree and the crossent under
``--against`` (imported as ``crossent_against``, as ``bench_evaluation`` does) are
called in turn, the order reversed every other round; CPU time of all threads
(``time.process_time``), min and median.  Each interval's value is compared with
``calibration_error``'s (bits) in both trees.  Written for branch calib2 (stop 73):
the interval's value summed block by block as ``calibration_error`` sums its bins,
where stop 72 (hostile4) ran ``calibration_error`` again over all rows after the
interval.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np

import crossent
from bench_evaluation import against


def data(rows: int, classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32 probabilities and logits of ``rows`` x ``classes``, and labels."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(rows, classes)) * 2.0
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = np.minimum((rng.random(rows)[:, None] > probs.cumsum(axis=1)).sum(axis=1), classes - 1)
    return probs.astype(np.float32), logits.astype(np.float32), labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", required=True, metavar="SRC")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    other = against(args.against)
    probs, logits, labels = data(args.rows, args.classes)
    calls: dict[str, Callable[[], object]] = {}
    for name, package in (("this tree", crossent), ("against", other)):
        for form, x in (("probs", probs), ("logits", logits)):
            for resamples in (1, 200):
                calls[f"{name}: bootstrap {form} R={resamples}"] = (
                    lambda p=package, f=form, x=x, r=resamples: p.bootstrap_interval(
                        "calibration_error", x, labels, form=f, resamples=r
                    )
                )
            expected = package.calibration_error(x, labels, form=form).value
            got = package.bootstrap_interval("calibration_error", x, labels, form=form, resamples=1)
            print(f"{name}, {form}: interval value == calibration_error: {got.value == expected}")
        if args.report:
            calls[f"{name}: report logits R=200"] = lambda p=package: p.report(
                logits, labels, form="logits", resamples=200
            )
    for call in calls.values():  # compiled or loaded
        call()
    print(f"load average {os.getloadavg()}")
    times: dict[str, list[float]] = {key: [] for key in calls}
    for r in range(args.rounds):
        for key in list(calls) if r % 2 == 0 else list(calls)[::-1]:
            start = time.process_time()
            calls[key]()
            times[key].append(time.process_time() - start)
    for key, seconds in sorted(times.items(), key=lambda item: item[0].split(": ")[::-1]):
        print(f"{key}: min {min(seconds):.4f} median {statistics.median(seconds):.4f} s CPU")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
