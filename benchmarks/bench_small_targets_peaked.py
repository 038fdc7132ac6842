"""Small soft-target gradient calls with a row where p > 1/2, and with none (issue 13).

The compiled small path forms NumPy's ``expm1(-ell)`` (the entry with :math:`p_c > 1/2`
as :math:`c\\operatorname{expm1}(\\log p_c) + (c - t_c)`) only where a row may have
such an entry. This times ``softmax_cross_entropy_with_targets_grad`` on (1, 10) and
(8, 10) logits, float64 and float32: ``none`` (logits clipped to [-1, 1]: every
:math:`p_c < 1/2`) and ``peaked`` (row 0 has a logit of 6: :math:`p > 1/2` there).
Best process CPU time (``time.process_time``) per call over ``--repeats`` interleaved
repeats of ``--number`` calls, beside the crossent package under ``--against`` (another
tree's ``src``, imported in the same process, its calls interleaved)::

    git -C /work/main archive HEAD src | tar -x -C /tmp/base
    python benchmarks/bench_small_targets_peaked.py --against /tmp/base/src
"""

from __future__ import annotations

import argparse
import os
import time
import timeit
from types import ModuleType

import numpy as np

import crossent


def _cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    cases = {}
    for rows in (1, 8):
        for dtype in (np.float64, np.float32):
            z = np.clip(rng.standard_normal((rows, 10)), -1.0, 1.0).astype(dtype)
            t = rng.dirichlet(np.ones(10), size=rows).astype(dtype)
            peaked = z.copy()
            peaked[0, 3] = 6.0
            name = f"({rows}, 10) {np.dtype(dtype).name}"
            cases[f"{name} none"] = (z, t)
            cases[f"{name} peaked"] = (peaked, t)
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--against", metavar="SRC", help="also time the crossent under SRC")
    args = parser.parse_args()
    packages: list[ModuleType] = [crossent]
    if args.against:
        from bench_evaluation import against

        packages.append(against(args.against))
    timers = []
    for key, (z, t) in _cases().items():
        for package in packages:
            call = lambda p=package, z=z, t=t: p.softmax_cross_entropy_with_targets_grad(z, t)  # noqa: E731
            call()  # warm up
            timers.append((key, package.__name__, timeit.Timer(call, timer=time.process_time)))
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.repeats):
        for key, name, timer in timers:
            value = timer.timeit(args.number) / args.number * 1e6
            best[key, name] = min(best.get((key, name), float("inf")), value)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; us per call (CPU)")
    names = [p.__name__ for p in packages]
    print("| call | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for key in _cases():
        print(f"| {key} | " + " | ".join(f"{best[key, n]:.2f}" for n in names) + " |")


if __name__ == "__main__":
    main()
