"""Per-call time of the NumPy-API functions on small PyTorch tensors against NumPy arrays.

    PYTHONPATH=src python benchmarks/bench_xp_torch_small.py [--number 500] [--repeats 5]
        [--no-route]

Small CPU tensors take the host route (``crossent._torch_host``: the NumPy path, results
as tensors) by default; ``--no-route`` turns it off (every tensor on the torch path).

Issue 13 once had a 5x slowdown for torch tensors passed to the measures and losses
(the Array-API path: namespace inference, per-dtype checks, host syncs of the
validation). Each case calls one public function on the same small float32 values as a
NumPy array and as a CPU ``torch.Tensor`` (one thread), with and without validation;
the table gives the minimum over the repeats (interleaved across cases, so that slow
spells of a loaded machine hit every case alike) in microseconds per call, and the
ratio torch / NumPy.
"""

from __future__ import annotations

import argparse
import os
import time
import timeit
from collections.abc import Callable

import numpy as np
import torch

import crossent


def _cases() -> dict[str, tuple[Callable[..., object], tuple[np.ndarray, ...]]]:
    rng = np.random.default_rng(0)
    logits1 = rng.normal(size=(1, 10)).astype(np.float32)
    logits8 = rng.normal(size=(8, 10)).astype(np.float32)
    labels1 = np.array([3])
    labels8 = rng.integers(0, 10, size=8)
    p = np.exp(logits8.astype(np.float64))
    p = (p / p.sum(-1, keepdims=True)).astype(np.float32)
    p /= p.sum(-1, keepdims=True, dtype=np.float32)
    q = p[::-1].copy()
    row = p[0].copy()
    bern = rng.uniform(0.05, 0.95, size=10).astype(np.float32)
    return {
        "entropy (10,)": (crossent.entropy, (row,)),
        "entropy (8, 10)": (crossent.entropy, (p,)),
        "kl_divergence (8, 10)": (crossent.kl_divergence, (p, q)),
        "cross_entropy (8, 10)": (crossent.cross_entropy, (p, q)),
        "binary_cross_entropy (10,)": (crossent.binary_cross_entropy, (bern, bern[::-1].copy())),
        "softmax_cross_entropy (1, 10)": (crossent.softmax_cross_entropy, (logits1, labels1)),
        "softmax_cross_entropy (8, 10)": (crossent.softmax_cross_entropy, (logits8, labels8)),
        "softmax_cross_entropy_grad (8, 10)": (
            crossent.softmax_cross_entropy_grad,
            (logits8, labels8),
        ),
        "distillation_loss (8, 10)": (crossent.distillation_loss, (logits8, logits8[::-1].copy())),
    }


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-route", action="store_true", help="turn the host route off")
    args = parser.parse_args()
    if args.no_route:
        from crossent import _torch_host

        _torch_host.MAX_ELEMENTS = -1
    torch.set_num_threads(1)
    calls: dict[tuple[str, str, bool], Callable[[], object]] = {}
    for name, (fn, arrays) in _cases().items():
        tensors = tuple(torch.from_numpy(a) for a in arrays)
        for validate in (True, False):
            for kind, given in (("numpy", arrays), ("torch", tensors)):
                calls[(name, kind, validate)] = lambda fn=fn, given=given, validate=validate: fn(
                    *given, validate=validate
                )
    logits8, labels8 = (torch.from_numpy(a) for a in _cases()["softmax_cross_entropy (8, 10)"][1])
    anchor = ("torch.nn.functional.cross_entropy (8, 10)", "torch", True)
    calls[anchor] = lambda: torch.nn.functional.cross_entropy(logits8, labels8)
    best = dict.fromkeys(calls, float("inf"))
    cpu = dict.fromkeys(calls, float("inf"))
    for call in calls.values():  # warm-up: Numba compilation, caches
        call()
    for _ in range(args.repeats):
        for key, call in calls.items():
            start = time.process_time()
            seconds = timeit.timeit(call, number=args.number) / args.number
            best[key] = min(best[key], seconds * 1e6)
            cpu[key] = min(cpu[key], (time.process_time() - start) / args.number * 1e6)
    print(f"load average {os.getloadavg()[0]:.2f}; us per call, min of {args.repeats}")
    print(f"{'case':36s} {'validate':>8s} {'numpy':>7s} {'torch':>8s} {'ratio':>6s} {'cpu':>7s}")
    for name in _cases():
        for validate in (True, False):
            n, t = best[(name, "numpy", validate)], best[(name, "torch", validate)]
            c = cpu[(name, "torch", validate)]
            print(f"{name:36s} {validate!s:>8s} {n:7.1f} {t:8.1f} {t / n:6.1f} {c:7.1f}")
    print(f"anchor: {anchor[0]} {best[anchor]:.1f} us (cpu {cpu[anchor]:.1f})")


if __name__ == "__main__":
    main()
