"""Fit time of VectorScaling and PlattScaling: process CPU seconds, one tree at a time.

    PYTHONPATH=<tree>/src python benchmarks/bench_recalibrator_polish.py [--repeats 5]

Run it once with each tree's ``src`` (for the A/B of the Newton polish: main's tree from
``git -C /work/main archive HEAD src | tar -x -C /tmp/<branch>_base``) and compare.
Each case fits a fresh calibrator on the same seeded data (logits ``2 z``, labels drawn
from ``softmax(0.6 * 2 z + bias)``), ``--repeats`` times after one warm-up fit, and
prints the median and minimum of ``time.process_time()`` (every thread of the process:
BLAS's too) and the fitted parameters' first entries, so that the two trees' fits can
be told apart.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import crossent

from _machine import cpu_name

CASES = [
    ("platt", 10_000, 2),
    ("platt", 1_000_000, 2),
    ("vector", 10_000, 10),
    ("vector", 100_000, 10),
    ("vector", 10_000, 100),
]


def _data(n: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, classes)) * 2.0
    truth = 0.6 * z + rng.normal(size=classes) * 0.3
    p = np.exp(truth - truth.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    labels = np.minimum((rng.random((n, 1)) > np.cumsum(p, axis=1)).sum(axis=1), classes - 1)
    return z, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"crossent from {crossent.__file__}; CPU {cpu_name()}")
    print("| calibrator | rows | classes | median CPU s | min CPU s | first parameters |")
    print("|---|---:|---:|---:|---:|---|")
    for kind, n, classes in CASES:
        z, labels = _data(n, classes)
        make = crossent.PlattScaling if kind == "platt" else crossent.VectorScaling
        fit = make().fit(z, labels)  # warm-up (imports SciPy's optimiser)
        seconds = []
        for _ in range(args.repeats):
            start = time.process_time()
            fit = make().fit(z, labels)
            seconds.append(time.process_time() - start)
        first = (
            f"{fit.slope_:.12f} {fit.intercept_:.12f}"  # type: ignore[union-attr]
            if kind == "platt"
            else f"{fit.scale_[0]:.12f} {fit.bias_[0]:.12f}"  # type: ignore[union-attr]
        )
        print(
            f"| {kind} | {n} | {classes} | {statistics.median(seconds):.4f} | "
            f"{min(seconds):.4f} | {first} |"
        )


if __name__ == "__main__":
    main()
