"""``sigmoid_focal_loss_grad``, tree against tree (branch hostilenumpy7: its
``sigmoid(x) - t`` from the cross-entropy's exact kernel instead of two exponentials).

    PYTHONPATH=src python benchmarks/bench_sigmoid_focal_grad_ab.py \\
        [--rows 1024] [--classes 1000] [--repeats 5] [--clock cpu] \\
        [--against PATH/TO/OTHER/src ...] [--rounds 3]

Cases (the first call of each warms up, not counted): NumPy ``rows x classes`` logits
(standard normal x 3) with uniform soft targets and with hard 0/1 targets, float32 and
float64, ``gamma=2``, ``'mean'``; the same float32 soft call with ``alpha`` and class
weights; a small call of 10 entries (the small path, 1000 calls per run); and the cost
cliff of branch focal2 (float64 entries where the gradient's two terms cancel are formed
again, in double-double since focal3): 4096 float64 logits at the focal optimum of
their soft targets (the float64 roots, found by bisection here). With
``--against`` the script runs under each tree, alternating round by round
(``_against.compare``).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

import crossent
from _against import add_options, clock, compare


def _cases(rows: int, classes: int) -> dict[str, tuple[tuple, dict]]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, classes)) * 3
    soft = rng.random((rows, classes))
    hard = (rng.random((rows, classes)) < 0.1).astype(np.float64)
    w = rng.uniform(0.5, 2.0, classes)
    cases: dict[str, tuple[tuple, dict]] = {}
    for dtype in (np.float32, np.float64):
        name = np.dtype(dtype).name
        cases[f"{name} soft"] = ((x.astype(dtype), soft.astype(dtype)), {})
        cases[f"{name} hard"] = ((x.astype(dtype), hard.astype(dtype)), {})
    f32 = (x.astype(np.float32), soft.astype(np.float32))
    cases["float32 soft alpha+weight"] = (f32, {"alpha": 0.25, "weight": w.astype(np.float32)})
    cases["small 10 (x1000)"] = ((x[0, :10].copy(), soft[0, :10].copy()), {})
    targets = rng.uniform(0.05, 0.95, 4096)
    cases["float64 4096 at the optimum"] = ((_optimum(targets, 2.0), targets), {})
    return cases


def _optimum(t: np.ndarray, gamma: float) -> np.ndarray:
    r"""The logits where the focal gradient (``gamma``, no alpha) of targets ``t`` is 0,
    by bisection on its float64 formula (between the logit of ``t``, where
    :math:`\sigma(x) - t = 0`, and 40 beyond it, where the focal term has faded: the
    gradient's sign differs); within a few ulps of the roots."""

    def gradient(x: np.ndarray) -> np.ndarray:
        s = 1 / (1 + np.exp(-x))
        q = t * (1 - s) + (1 - t) * s
        bce = t * np.logaddexp(0, -x) + (1 - t) * np.logaddexp(0, x)
        return gamma * (1 - 2 * t) * s * (1 - s) / q * bce + s - t

    lo = np.log(t / (1 - t))
    hi = lo + np.where(t > 0.5, 40.0, -40.0)
    sign = np.sign(gradient(lo))
    for _ in range(100):
        mid = (lo + hi) / 2
        same = np.sign(gradient(mid)) == sign
        lo, hi = np.where(same, mid, lo), np.where(same, hi, mid)
    return lo


def _time(args: argparse.Namespace) -> dict[str, list[float]]:
    timer = clock(args)
    times: dict[str, list[float]] = {}
    for name, (arrays, options) in _cases(args.rows, args.classes).items():
        calls = 1000 if name.startswith("small") else 1
        runs = []
        for _ in range(args.repeats + 1):
            start = timer()
            for _ in range(calls):
                crossent.sigmoid_focal_loss_grad(*arrays, gamma=2.0, **options)
            runs.append(timer() - start)
        label = name if name.startswith("small") else f"{args.rows} x {args.classes} {name}"
        times[label] = runs[1:]
    return times


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    add_options(parser)
    args = parser.parse_args(argv)
    if args.against:
        own = ["--rows", str(args.rows), "--classes", str(args.classes)]
        own += ["--repeats", str(args.repeats), "--clock", args.clock]
        compare(__file__, own, args.against, args.rounds)
        return
    times = _time(args)
    if args.json:
        print(json.dumps(times))
        return
    for name, runs in times.items():
        print(f"{name:45s} {min(runs) * 1e3:9.2f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
