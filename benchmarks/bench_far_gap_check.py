"""A/B of the far-gap check (issue 13 follow-up): the public losses with the check
(``far_rows_guard``) against the same function without it (``_common_path``), interleaved
in one process, thread CPU time, min of many rounds. Indicative on a shared machine.

Run: ``PYTHONPATH=src python benchmarks/bench_far_gap_check.py``.
"""

from __future__ import annotations

import time

import numpy as np

import crossent


def _best(f, args, kwargs, calls: int) -> float:
    start = time.thread_time_ns()
    for _ in range(calls):
        f(*args, **kwargs)
    return (time.thread_time_ns() - start) / calls / 1e3


def main() -> None:
    rng = np.random.default_rng(0)
    cases = []
    for rows, classes, dtype in (
        (1, 8, np.float64),
        (32, 10, np.float32),
        (4096, 1000, np.float32),
    ):
        z = rng.standard_normal((rows, classes)).astype(dtype)
        y = rng.integers(0, classes, rows)
        t = rng.dirichlet(np.ones(classes), rows).astype(dtype)
        calls = 500 if rows * classes < 10**4 else 3
        cases.append(
            (
                f"softmax_cross_entropy {rows}x{classes} {np.dtype(dtype).name}",
                crossent.softmax_cross_entropy,
                (z, y),
                {},
                calls,
            )
        )
        cases.append(
            (
                "  reduction='none'",
                crossent.softmax_cross_entropy,
                (z, y),
                {"reduction": "none"},
                calls,
            )
        )
        cases.append(
            (
                f"with_targets {rows}x{classes}",
                crossent.softmax_cross_entropy_with_targets,
                (z, t),
                {},
                calls,
            )
        )
        cases.append(
            (
                f"distillation_loss {rows}x{classes}",
                crossent.distillation_loss,
                (z, z[::-1].copy()),
                {"temperature": 2.0},
                calls,
            )
        )
    for name, f, args, kwargs, calls in cases:
        f(*args, **kwargs)
        a, b = [], []
        for _ in range(40):
            a.append(_best(f._common_path, args, kwargs, calls))
            b.append(_best(f, args, kwargs, calls))
        without, with_check = min(a), min(b)
        print(
            f"{name:48s} without {without:9.2f} us  with {with_check:9.2f} us"
            f"  ({with_check - without:+.2f} us)"
        )


if __name__ == "__main__":
    main()
