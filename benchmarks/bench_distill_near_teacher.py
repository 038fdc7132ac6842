"""Time ``distillation_loss_grad`` on rows near their teacher (issue 13, distillrule13, rev1).

    python benchmarks/bench_distill_near_teacher.py [--against PATH/TO/OTHER/src]

Teacher logits are the student's plus N(0, noise) (noise 0.3: ordinary rows), T = 1,
both directions; min of 5 x 300 calls, CPU clock, us per call
(``benchmarks/RESULTS.md``). ``--against`` imports a second copy of crossent into the
same process and interleaves its calls with this tree's (``bench_evaluation.against``).
Run with ``PYTHONPATH=src`` from the repository root.
"""

from __future__ import annotations

import argparse
import time
import timeit
from types import ModuleType

import numpy as np

import crossent

CASES = [((1, 10), 3e-4), ((8, 10), 3e-4), ((1, 10), 3e-6), ((64, 100), 3e-4), ((8, 10), 0.3)]
DIRECTIONS = ("forward", "reverse")


def main() -> None:
    """Print one line a case and direction: us per call of each package."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", metavar="SRC", help="also time crossent under SRC")
    args = parser.parse_args()
    packages: list[ModuleType] = [crossent]
    if args.against:
        from bench_evaluation import against

        packages.append(against(args.against))
    rng = np.random.default_rng(3)
    timers: list[tuple[str, timeit.Timer]] = []
    for shape, noise in CASES:
        z = rng.standard_normal(shape)
        v = z + rng.standard_normal(shape) * noise
        for direction in DIRECTIONS:
            for package in packages:

                def call(
                    z: np.ndarray = z,
                    v: np.ndarray = v,
                    c: ModuleType = package,
                    d: str = direction,
                ) -> object:
                    return c.distillation_loss_grad(z, v, temperature=1.0, direction=d)

                call()
                label = f"{shape} noise {noise} {direction} {package.__name__}"
                timers.append((label, timeit.Timer(call, timer=time.process_time)))
    best = {label: float("inf") for label, _ in timers}
    for _ in range(5):  # interleaved: a slow spell hits every case alike
        for label, timer in timers:
            best[label] = min(best[label], timer.timeit(number=300))
    for label, seconds in best.items():
        print(f"{label}: {seconds / 300 * 1e6:.1f} us")


if __name__ == "__main__":
    main()
