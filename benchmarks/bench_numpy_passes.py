"""Per pass: where the no-Numba forward's time goes, in ns an entry (issue 13).

    cd benchmarks && PYTHONPATH=../src:. ./emulate_avx2.sh python bench_numpy_passes.py \\
        [--rows 8] [--classes 32000] [--turns 15]

Process time of each NumPy pass of ``_numpy_kernels``' float32 forward on one block of
``bench_softmax_ce.py``'s logits: random rows (``_exp_sum32``'s passes: the maximum,
``x - t``, the float32 ``exp``, einsum's float64 sum, the error of ``x - t`` by
TwoSum's five passes or by Fast2Sum's ``min`` and two, the dot product) and confident
peaked rows (``_direct_rest``'s: ``argmax``, the ``exp`` of the logits, their float64
sum, the significant entries' mask, places and sums). Then the float32 ``exp`` on
arguments whose results are normal, subnormal (-103.97 < x < -87.34) or 0 (x < -103.97):
the subnormal ones take NumPy's slow path. The passes take turns (interleaved), and the
median and minimum of ``--turns`` are printed with the load average.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

from bench_softmax_ce import make_logits
from crossent.losses import _numpy_kernels as kernels

from _machine import cpu_name, vector_width


def per_entry(passes: dict[str, Callable[[], object]], entries: int, turns: int) -> None:
    """Prints each pass's median and minimum process time per entry, interleaved."""
    times: dict[str, list[float]] = {name: [] for name in passes}
    calls = 50
    for _ in range(turns):
        for name, run in passes.items():
            start = time.process_time_ns()
            for _ in range(calls):
                run()
            times[name].append((time.process_time_ns() - start) / calls / entries)
    for name, values in times.items():
        print(f"  {name:34s} {np.median(values):6.3f} ns (min {min(values):6.3f})")


def random_passes(x: np.ndarray) -> dict[str, Callable[[], object]]:
    top = x.max(axis=1, keepdims=True)
    h, e, a, d = (np.empty_like(x) for _ in range(4))
    np.subtract(x, top, out=h)
    sums = np.empty(len(x))
    return {
        "max": lambda: np.max(x, axis=1, keepdims=True, out=top),
        "x - t": lambda: np.subtract(x, top, out=h),
        "float32 exp": lambda: np.exp(h, out=e),
        "einsum float64 sum": lambda: np.einsum("ij->i", e, dtype=np.float64, out=sums),
        # (into d: h stays; both take the whole of their passes whatever d holds)
        "TwoSum error (5 passes)": lambda: kernels._difference_error(x, top, h, a, d),
        "Fast2Sum error (min + 2 passes)": lambda: kernels._shifted_error(x, top, d, a),
        "dot product": lambda: kernels._row_dot(e, h),
        "_exp_sum32 (all of the above)": lambda: kernels._exp_sum32(x, top, h, e, a, out=sums),
    }


def peaked_passes(x: np.ndarray) -> dict[str, Callable[[], object]]:
    n = len(x)
    top = x.max(axis=1, keepdims=True)
    first_max = np.argmax(x, axis=1)
    e = np.exp(x)
    e[np.arange(n), first_max] = 0.0
    total = np.einsum("ij->i", e, dtype=np.float64)
    tau = (total * kernels.SIGNIFICANT).astype(np.float32)
    work = np.empty(x.shape)
    flags = work.reshape(-1).view(np.bool_)
    mask = flags[: x.size].reshape(x.shape)
    np.greater_equal(e, tau[:, None], out=mask)
    share = mask.mean()
    print(f"  (significant entries: {100 * share:.1f} %)")
    rest = np.empty(n)
    buffers = (np.empty_like(x), work)
    return {
        "argmax": lambda: np.argmax(x, axis=1),
        "float32 exp of x": lambda: np.exp(x, out=buffers[0]),
        "einsum float64 sum": lambda: np.einsum("ij->i", e, dtype=np.float64),
        "significant mask (>=)": lambda: np.greater_equal(e, tau[:, None], out=mask),
        "_set_places": lambda: kernels._set_places(flags, x.size),
        "_significant_sums (mask included)": lambda: kernels._significant_sums(x, e, tau, flags),
        "_direct_rest (all of the above)": lambda: kernels._direct_rest(
            x, first_max, top, buffers, out=rest
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--classes", type=int, default=32000)
    parser.add_argument("--turns", type=int, default=15)
    args = parser.parse_args()
    print(f"machine: {cpu_name()}, {vector_width()}, load average {os.getloadavg()[0]:.2f}")
    random, _ = make_logits(args.rows, args.classes, "random")
    print(f"random logits, {args.rows} x {args.classes} (a block of _exp_sum32):")
    per_entry(random_passes(random), random.size, args.turns)
    peaked, _ = make_logits(64 * args.rows, args.classes, "peaked")
    top = peaked.max(axis=1, keepdims=True)
    sums = np.exp(peaked - top, dtype=np.float64).sum(axis=1)
    confident = peaked[sums < kernels.EXACT_BELOW][: args.rows]
    print(f"confident peaked rows, {len(confident)} x {args.classes} (_direct_rest):")
    per_entry(peaked_passes(np.ascontiguousarray(confident)), confident.size, args.turns)
    base = np.random.default_rng(0).standard_normal(args.rows * args.classes).astype(np.float32)
    out = np.empty_like(base)
    arguments = {
        "float32 exp, N(0, 9) - 15 (normal)": base * 3 - 15,
        "float32 exp, in (-103.9, -87.4) (subnormal)": -95.6 + 8 * np.tanh(base),
        "float32 exp, below -104 (0)": base * 3 - 130,
    }
    print("float32 exp by the range of its results:")
    per_entry(
        {name: (lambda x=x: np.exp(x, out=out)) for name, x in arguments.items()},
        base.size,
        args.turns,
    )
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
