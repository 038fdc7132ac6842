"""softmax_cross_entropy_with_targets_grad where rows have p > 1/2, or none (issue 13).

The entry with :math:`p > 1/2` is formed as :math:`c\\operatorname{expm1}(\\log p) +
(c - t)` on rows where one class has it; this times the gradient on data with no such
row (``near``: ``bench_soft_target_grad.py``'s, targets near the softmax) and with every
row so (``peaked``: the first logit at 30, one-hot targets). Best process CPU time
(``time.process_time``, all threads) and wall time of ``--repeats`` calls. Run it under
two trees, interleaved::

    for tree in /tmp/main_tree/src src; do for kind in near peaked; do
        PYTHONPATH=$tree python benchmarks/bench_soft_target_peaked.py 4096 32000 $kind
    done; done
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
    parser.add_argument("kind", choices=["near", "peaked"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    shape = (args.rows, args.classes)
    if args.kind == "near":
        z = rng.standard_normal(shape) * 2
        p = np.exp(z - z.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        t = p * (1 + rng.uniform(-1e-3, 1e-3, shape))
        t /= t.sum(-1, keepdims=True)
        del p
    else:
        z = rng.standard_normal(shape)
        z[:, 0] = 30.0
        t = np.zeros(shape)
        t[:, 0] = 1.0
    z, t = z.astype(args.dtype), t.astype(args.dtype)
    crossent.softmax_cross_entropy_with_targets_grad(z, t, validate=False)  # warm-up
    best_cpu = best_wall = np.inf
    for _ in range(args.repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        crossent.softmax_cross_entropy_with_targets_grad(z, t, validate=False)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    print(
        f"{args.kind} {shape} {args.dtype}: "
        f"cpu {best_cpu * 1e3:.0f} ms, wall {best_wall * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    main()
