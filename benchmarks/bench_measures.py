"""entropy and kl_divergence against scipy.stats.entropy, side by side in one process.

    python benchmarks/bench_measures.py [--rows 100000] [--classes 1000] [--repeats 5]

Both libraries get the same float64 rows (Dirichlet draws, already normalised). The
runs are interleaved (crossent, SciPy, crossent, ...) so that drift in the machine's
speed hits both; the report gives the median of each and their ratio, and the peak
memory that each call allocates beyond its inputs (tracemalloc sees NumPy's buffers).
crossent validates its input (entries in [0, 1], rows summing to 1) inside the timed
call; ``validate=False`` is timed too. SciPy renormalises instead of validating.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from collections.abc import Callable

import numpy as np
import scipy
import scipy.stats

import crossent

from _machine import peak_mib, timed_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(args.classes), size=args.rows)
    q = rng.dirichlet(np.ones(args.classes), size=args.rows)
    np.testing.assert_allclose(crossent.entropy(p), scipy.stats.entropy(p, axis=1), rtol=1e-12)
    np.testing.assert_allclose(
        crossent.kl_divergence(p, q), scipy.stats.entropy(p, q, axis=1), rtol=1e-10
    )

    cases: dict[str, dict[str, Callable[[], object]]] = {
        "entropy(p)": {
            "crossent": lambda: crossent.entropy(p),
            "crossent validate=False": lambda: crossent.entropy(p, validate=False),
            "scipy.stats.entropy": lambda: scipy.stats.entropy(p, axis=1),
        },
        "kl_divergence(p, q)": {
            "crossent": lambda: crossent.kl_divergence(p, q),
            "crossent validate=False": lambda: crossent.kl_divergence(p, q, validate=False),
            "scipy.stats.entropy": lambda: scipy.stats.entropy(p, q, axis=1),
        },
    }
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, NumPy {np.__version__}, SciPy {scipy.__version__}"
    )
    print(
        f"input: {args.rows} x {args.classes} float64 rows, {p.nbytes / 2**20:.0f} MiB each; "
        f"median of {args.repeats} interleaved runs\n"
    )
    print("| measure | implementation | median s | vs SciPy | peak extra MiB |")
    print("|---|---|---:|---:|---:|")
    for measure, impls in cases.items():
        for fn in impls.values():
            fn()  # warm-up
        times: dict[str, list[float]] = {name: [] for name in impls}
        for _ in range(args.repeats):
            for name, fn in impls.items():
                times[name].append(timed_seconds(fn))
        reference = statistics.median(times["scipy.stats.entropy"])
        for name, fn in impls.items():
            median = statistics.median(times[name])
            peak = peak_mib(fn)
            print(f"| {measure} | {name} | {median:.3f} | {median / reference:.2f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
