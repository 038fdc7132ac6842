"""Where the host route stops paying: CPU tensors through the NumPy path against the
torch path, by size (issue 13, ``crossent._torch_host.MAX_ELEMENTS``).

    PYTHONPATH=src python benchmarks/bench_torch_host_threshold.py [--number 20] [--repeats 3]

For each function and size, the CPU time (``time.process_time``, all threads) of one
call with the route on (``MAX_ELEMENTS`` above the size) and off (-1), interleaved, min
of ``--repeats`` rounds of ``--number`` calls; float32, validated (the default),
``torch.set_num_threads(1)`` unless ``--threads``. The route is worth it while the
ratio on/off stays below 1.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from functools import partial

import torch

import crossent
from crossent import _torch_host


def _cases(rows: int, classes: int) -> dict[str, tuple[Callable[..., object], tuple[object, ...]]]:
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(rows, classes, generator=gen)
    p = torch.softmax(z.double(), -1).float()
    q = p.flip(0).contiguous()
    y = torch.randint(0, classes, (rows,), generator=gen)
    b = torch.rand(rows * classes, generator=gen).mul(0.9).add(0.05)
    return {
        "entropy": (crossent.entropy, (p,)),
        "kl_divergence": (crossent.kl_divergence, (p, q)),
        "binary_cross_entropy": (crossent.binary_cross_entropy, (b, b.flip(0).contiguous())),
        "softmax_cross_entropy": (crossent.softmax_cross_entropy, (z, y)),
        "softmax_cross_entropy_grad": (crossent.softmax_cross_entropy_grad, (z, y)),
        "distillation_loss": (crossent.distillation_loss, (z, z.flip(0).contiguous())),
    }


def _cpu_us(call: Callable[[], object], number: int) -> float:
    start = time.process_time()
    for _ in range(number):
        call()
    return (time.process_time() - start) / number * 1e6


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--rows", type=str, default="1,10,82,164,328,655,1311,2621")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average {os.getloadavg()[0]:.2f}; CPU us per call, min of {args.repeats}")
    print(f"{'function':28s} {'elements':>9s} {'route on':>10s} {'route off':>10s} {'ratio':>6s}")
    saved = _torch_host.MAX_ELEMENTS
    for rows in (int(r) for r in args.rows.split(",")):
        for name, (fn, given) in _cases(rows, args.classes).items():
            best = {True: float("inf"), False: float("inf")}
            for _ in range(args.repeats):
                for on in (True, False):
                    _torch_host.MAX_ELEMENTS = (1 << 40) if on else -1
                    fn(*given)  # warm-up (Numba, caches)
                    best[on] = min(best[on], _cpu_us(partial(fn, *given), args.number))
            _torch_host.MAX_ELEMENTS = saved
            ratio = best[True] / best[False]
            elements = rows * args.classes
            print(f"{name:28s} {elements:9d} {best[True]:10.1f} {best[False]:10.1f} {ratio:6.2f}")


if __name__ == "__main__":
    main()
