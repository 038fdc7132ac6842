"""Time ``distillation_loss_grad`` on rows near their teacher (issue 13, branch distillrule13).

Teacher logits are the student's plus N(0, noise), T = 1; min of 5 x 300 calls, CPU
clock, us per call (``benchmarks/RESULTS.md``). Run with ``PYTHONPATH=../src``.
"""

from __future__ import annotations

import time
import timeit

import numpy as np

import crossent

CASES = [((1, 10), 3e-4), ((8, 10), 3e-4), ((1, 10), 3e-6), ((64, 100), 3e-4)]


def main() -> None:
    """Print one line: us per call of each case."""
    rng = np.random.default_rng(3)
    results = []
    for shape, noise in CASES:
        z = rng.standard_normal(shape)
        v = z + rng.standard_normal(shape) * noise

        def call(z: np.ndarray = z, v: np.ndarray = v) -> object:
            return crossent.distillation_loss_grad(z, v, temperature=1.0)

        call()
        times = timeit.repeat(call, number=300, repeat=5, timer=time.process_time)
        results.append(f"{shape} noise {noise}: {min(times) / 300 * 1e6:.1f} us")
    print("; ".join(results))


if __name__ == "__main__":
    main()
