"""Time ``EvaluationState.calibration()`` of a class-wise state of 50 000 classes.

The result's statistics are read-only views of the state's sums (branch hostileeval5):
this checks that handing them out costs nothing against copying them. Run from the
repository root with the tree to time on ``PYTHONPATH``::

    PYTHONPATH=src python benchmarks/bench_state_calibration.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import crossent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    state = crossent.EvaluationState(args.classes, scope="class-wise", keep=0)
    probs = np.full((64, args.classes), 1.0 / args.classes)
    state.update(probs, np.zeros(64, dtype=np.int64))
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        state.calibration()
        times.append(time.perf_counter() - start)
    print(f"calibration() of {args.classes} classes: median {np.median(times) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
