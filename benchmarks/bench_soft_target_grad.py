"""softmax_cross_entropy_with_targets_grad on float32 soft targets: time and accuracy.

Run the same script under two trees, interleaved, on a noisy machine (issue 13)::

    for i in 1 2 3; do for tree in /tmp/main_tree $PWD; do
        PYTHONPATH=$tree/src python benchmarks/bench_soft_target_grad.py 2048 8192
    done; done

Prints the best of ``--repeats`` timings of the gradient (reduction 'mean', C-contiguous
float32 logits and targets near the softmax, so that entries cancel) and its largest
absolute error against torch's float64 autograd on the same stored values.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import crossent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", type=int)
    parser.add_argument("classes", type=int)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    z = (rng.standard_normal((args.rows, args.classes)) * 2).astype(np.float32)
    z64 = z.astype(np.float64)
    p = np.exp(z64 - z64.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    t = p * (1 + rng.uniform(-1e-3, 1e-3, p.shape))
    t = (t / t.sum(-1, keepdims=True)).astype(np.float32)
    best = np.inf
    for _ in range(args.repeats):
        start = time.perf_counter()
        grad = crossent.softmax_cross_entropy_with_targets_grad(z, t, validate=False)
        best = min(best, time.perf_counter() - start)
    probs = np.exp(z64 - np.log(np.exp(z64).sum(-1, keepdims=True)))
    truth = (probs - t) / args.rows
    error = np.abs(grad.astype(np.float64) - truth)
    # in float32 ulps of each entry, floored at 1e-10 of its p / rows (float64's reach)
    unit = np.maximum(np.spacing(np.abs(truth).astype(np.float32)), 1e-10 * probs / args.rows)
    print(
        f"{crossent.__file__.split('/src/')[0]}: {args.rows}x{args.classes} "
        f"best {best * 1e3:.2f} ms, max |error| x rows {error.max() * args.rows:.2e}, "
        f"max error {np.max(error / unit):.1f} ulps (floored)"
    )


if __name__ == "__main__":
    main()
