"""The measures of float32 inputs: time and error against float64, one tree per run.

Run the same script under two trees, interleaved, on a noisy machine (issue 13)::

    for i in 1 2 3; do for tree in /tmp/main_tree $PWD; do
        PYTHONPATH=$tree/src python benchmarks/bench_info_float32.py 20000 1000
    done; done

Per call (C-contiguous and Fortran-ordered float32 inputs): the best of ``--repeats``
timings and the largest error in float32 ulps of the float64 call on the same stored
values (``validate=False``, as a training loop's metrics would call them).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import crossent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", type=int)
    parser.add_argument("classes", type=int)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    shape = (args.rows, args.classes)
    z = (rng.standard_normal(shape) * 3).astype(np.float32)
    p = rng.dirichlet(np.ones(args.classes), args.rows).astype(np.float32)
    calls: dict[str, Callable[..., Any]] = {
        "entropy(logits)": lambda a, b: crossent.entropy(a, p_form="logits", validate=False),
        "cross_entropy(p, logits)": lambda a, b: crossent.cross_entropy(
            b, a, q_form="logits", validate=False
        ),
        "kl_divergence(logits, logits)": lambda a, b: crossent.kl_divergence(
            a, a[::-1], p_form="logits", q_form="logits", validate=False
        ),
    }
    print(crossent.__file__.split("/src/")[0])
    for name, call in calls.items():
        truth = np.asarray(call(z.astype(np.float64), p.astype(np.float64)))
        unit = np.spacing(np.abs(truth).astype(np.float32)).astype(np.float64)
        for layout, (a, b) in {
            "C": (z, p),
            "F": (np.asfortranarray(z), np.asfortranarray(p)),
        }.items():
            best, got = np.inf, None
            for _ in range(args.repeats):
                start = time.perf_counter()
                got = call(a, b)
                best = min(best, time.perf_counter() - start)
            ulps = np.max(np.abs(np.asarray(got, np.float64) - truth) / unit)
            print(f"  {name:32s} {layout}: best {best * 1e3:8.2f} ms, max error {ulps:6.2f} ulps")


if __name__ == "__main__":
    main()
