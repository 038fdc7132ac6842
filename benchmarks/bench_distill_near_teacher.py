"""Time ``distillation_loss_grad`` on rows near their teacher (issue 13, distillrule13, rev1).

    python benchmarks/bench_distill_near_teacher.py [--against PATH/TO/OTHER/src]

Teacher logits are the student's plus N(0, noise) (noise 0.3: ordinary rows; a 2000 x
1000 call of them takes the fused kernels), and a row whose little mass moved far down
(``MOVED``: formed by ``NearRows`` in both directions since branch distillrev1), T = 1,
both directions; min of 5 x 300 calls (3 for the fused call), CPU clock, us per call
(``benchmarks/RESULTS.md``). ``--against`` imports a second copy of crossent into the
same process and interleaves its calls with this tree's (``bench_evaluation.against``).
Run with ``PYTHONPATH=src`` from the repository root.
"""

from __future__ import annotations

import argparse
import math
import time
import timeit
from types import ModuleType

import numpy as np

import crossent

CASES = [
    ((1, 10), 3e-4),
    ((8, 10), 3e-4),
    ((1, 10), 3e-6),
    ((64, 100), 3e-4),
    ((8, 10), 0.3),
    ((2000, 1000), 0.3),
]
DIRECTIONS = ("forward", "reverse")
_M = 2.9e-5
MOVED = (
    np.array([[0.0, math.log1p(-_M) + 1e-7, math.log(_M) - 70.0]]),
    np.array([[0.0, math.log1p(-_M), math.log(_M)]]),
)
r"""Student and teacher logits of a row whose mass :math:`2.9\cdot 10^{-5}` moved far down."""


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
    timers: list[tuple[str, timeit.Timer, int]] = []
    inputs = []
    for shape, noise in CASES:  # (z, then v: the inputs of earlier runs)
        z = rng.standard_normal(shape)
        inputs.append((f"{shape} noise {noise}", z, z + rng.standard_normal(shape) * noise))
    for label, z, v in [*inputs, ("moved (1, 3)", *MOVED)]:
        number = 3 if z.size > 10**5 else 300
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
                name = f"{label} {direction} {package.__name__}"
                timers.append((name, timeit.Timer(call, timer=time.process_time), number))
    best = {name: float("inf") for name, _, _ in timers}
    for _ in range(5):  # interleaved: a slow spell hits every case alike
        for name, timer, number in timers:
            best[name] = min(best[name], timer.timeit(number=number) / number)
    for name, seconds in best.items():
        print(f"{name}: {seconds * 1e6:.1f} us")


if __name__ == "__main__":
    main()
