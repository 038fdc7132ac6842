"""The exact softmax gradients that ``_cpu_kernels_numba.exp_of_pair`` serves: A/B.

Times this tree's ``crossent`` and other copies of it in one process, interleaved call
by call (issue 13, branch smoothperf: the smoothed label gradient's fix pass, and the
one exponential of the label-smoothed and the soft-target gradients)::

    NUMBA_NUM_THREADS=1 python benchmarks/bench_smoothed_grad_ab.py 512 32000 \\
        --against /tmp/main_tree/src /tmp/pre_lsgrad/src [--repeats 15] [--cases smooth,target]

Each ``--against`` source folder's ``crossent`` is imported as ``crossent_ab<i>``
(``bench_kl_mixed_ab._copy``). Cases, float32 logits (standard normal x 3, seed 0):
``smooth``, ``softmax_cross_entropy_grad(z, y, label_smoothing=0.1, out=buffer)``;
``smooth_t``, the same at temperature 1.3 (where the tree has it); ``target``,
``softmax_cross_entropy_with_targets_grad(z, t)`` (soft targets, Dirichlet-like rows).
Reported per case and tree: the best (minimum) and median of ``--repeats`` calls by the
process's CPU time (all threads: with ``NUMBA_NUM_THREADS=1`` the one worker's), the
trees taking turns call by call after a warm-up, the ratio of the bests to this tree's,
whether the trees gave the same bits, and the load average before and after.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import crossent
from bench_kl_mixed_ab import _copy


def _calls(module: Any, rows: int, classes: int) -> dict[str, Callable[[], Any]]:
    """Each case's call with ``module``'s functions (the same seeded inputs)."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((rows, classes), dtype=np.float32) * 3
    y = rng.integers(0, classes, rows)
    t = rng.random((rows, classes), dtype=np.float32)
    t /= t.sum(-1, keepdims=True, dtype=np.float64).astype(np.float32)
    buffer = np.empty_like(z)
    grad = module.softmax_cross_entropy_grad
    return {
        "smooth": lambda: grad(z, y, label_smoothing=0.1, out=buffer),
        "smooth_t": lambda: grad(z, y, label_smoothing=0.1, temperature=1.3, out=buffer),
        "target": lambda: module.softmax_cross_entropy_with_targets_grad(z, t),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", type=int)
    parser.add_argument("classes", type=int)
    parser.add_argument("--against", nargs="*", default=[], help="other trees' src folders")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--cases", default="smooth,smooth_t,target")
    args = parser.parse_args()
    modules = [crossent] + [_copy(src, i) for i, src in enumerate(args.against)]
    wanted = args.cases.split(",")
    print(
        f"{args.rows} x {args.classes} float32, NUMBA_NUM_THREADS="
        f"{os.environ.get('NUMBA_NUM_THREADS', '(all)')}; load before: {os.getloadavg()}"
    )
    for case in wanted:
        calls = [_calls(m, args.rows, args.classes)[case] for m in modules]
        digests = []
        for call in calls:  # warm-up: compile or load the cache, first touch
            digests.append(hashlib.sha256(np.asarray(call()).tobytes()).hexdigest()[:12])
        times: list[list[float]] = [[] for _ in calls]
        for _ in range(args.repeats):
            for i, call in enumerate(calls):
                start = time.process_time()
                call()
                times[i].append(time.process_time() - start)
        bests = [min(t) for t in times]
        cells = "  ".join(
            f"tree {i} {min(t) * 1e3:7.2f} / {statistics.median(t) * 1e3:7.2f} ms"
            for i, t in enumerate(times)
        )
        ratios = " ".join(f"{b / bests[0]:.3f}x" for b in bests[1:])
        same = "same bits" if len(set(digests)) == 1 else f"bits {digests}"
        print(f"{case:9s} {cells}  (best/median CPU)  others/tree 0: {ratios}  {same}")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
