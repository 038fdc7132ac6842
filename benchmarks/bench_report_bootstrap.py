"""The report's calibration-error bootstrap alone, tree against tree (issue 13).

    python benchmarks/bench_report_bootstrap.py [--rows 1000000] [--resamples 1000]
        [--repeats 2] [--clock cpu] [--memory] [--against TREE ...] [--rounds 3]

The per-row top-label confidences and hits of the model of ``bench_report_cases.py``
(10^6 x 10 float32 logits, labels drawn from ``softmax(logits / 1.3)``), 15 equal-width
bins, L1: the call ``crossent.report`` makes, ``binned_calibration_interval(conf,
hits, spec, confidence=0.95, resamples=1000, seed=0)``, timed (CPU time of all threads
with ``--clock cpu``) with Numba's kernels and with NumPy alone (Numba reported as
missing).  ``--memory``: the peak of NumPy's allocations during one call
(``tracemalloc``), each path.  The intervals are printed, so that the trees' numbers can
be compared (the same within a tree on either path).
"""

from __future__ import annotations

import argparse
import json
import sys
import tracemalloc

import numpy as np

from _against import add_options, clock, compare
from bench_report_cases import _model


def _rows(rows: int) -> tuple[np.ndarray, np.ndarray]:
    return top_label(*_model(np.random.default_rng(0), rows, 10))


def top_label(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The top-label confidences and hits (float64) of ``logits``' softmax."""
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return p.max(axis=1), (p.argmax(axis=1) == labels).astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--memory", action="store_true", help="peak of NumPy's allocations")
    add_options(parser)
    args = parser.parse_args()
    if args.against:
        argv = [a for a in sys.argv[1:] if a not in args.against and a != "--against"]
        compare(__file__, argv, args.against, args.rounds)
        return
    from crossent.calibration import _row_kernels
    from crossent.calibration._bootstrap import binned_calibration_interval
    from crossent.calibration._error import check_spec

    conf, hits = _rows(args.rows)
    spec = check_spec(
        bins=15, binning="uniform", norm="l1", scope="top-label", debias=False, closed="left"
    )
    timer = clock(args)
    times: dict[str, list[float]] = {}
    available = _row_kernels.available
    for path in ("numba", "numpy"):
        _row_kernels.available = available if path == "numba" else (lambda: False)  # type: ignore[assignment]
        case = f"{path}, {args.rows} rows, {args.resamples} resamples"

        def call() -> object:
            return binned_calibration_interval(
                conf, hits, spec, confidence=0.95, resamples=args.resamples, seed=0
            )

        result = call()  # the kernel compiled or loaded
        for _ in range(args.repeats):
            start = timer()
            call()
            times.setdefault(case, []).append(timer() - start)
        if args.memory:
            tracemalloc.start()
            call()
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(f"{case}: peak of NumPy's allocations {peak / 2**20:.1f} MiB", file=sys.stderr)
        if not args.json:
            print(f"{case}: {result}; {', '.join(f'{t:.2f}' for t in times.get(case, []))} s")
    if args.json:
        print(json.dumps(times))


if __name__ == "__main__":
    main()
