"""CPU time of the float32 label gradient, for the far-LSE screen (issue 13).

Run against two trees side by side (``PYTHONPATH=<tree>/src``): the 4096 x 32000 float32
gradient into a reused ``out=`` buffer (the full Numba kernel; the screen is a max and a
min of the 4096 float64 log-sum-exps) and an 8 x 32 call (the compiled small call; the
screen is one compiled scan of the 256 logits). Minimum per-call process CPU time over
``--repeats`` turns.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import crossent


def _per_call(f: object, calls: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(calls):
            f()  # type: ignore[operator]
        best = min(best, (time.process_time() - start) / calls)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    z = (rng.standard_normal((4096, 32000), dtype=np.float32) * 3).astype(np.float32)
    y = rng.integers(0, 32000, size=4096)
    out = np.empty_like(z)
    small = (rng.standard_normal((8, 32)) * 3).astype(np.float32)
    ys = rng.integers(0, 32, size=8)
    crossent.softmax_cross_entropy_grad(z, y, out=out)
    crossent.softmax_cross_entropy_grad(small, ys)
    big = _per_call(lambda: crossent.softmax_cross_entropy_grad(z, y, out=out), 1, args.repeats)
    tiny = _per_call(lambda: crossent.softmax_cross_entropy_grad(small, ys), 20000, args.repeats)
    print(f"{crossent.__file__}")
    print(f"4096x32000 float32 grad (out=): {big * 1e3:.1f} ms CPU")
    print(f"8x32 float32 grad (small call): {tiny * 1e6:.2f} us CPU")


if __name__ == "__main__":
    main()
