"""The NumPy kernels (no Numba) with ``EXACT_ALL`` on and off, in one process, against torch.

    cd benchmarks && PYTHONPATH=../src:. python bench_exact_all.py [--turns 5]
        [--rows 4096] [--classes 32000]
    cd benchmarks && PYTHONPATH=../src:. ./emulate_avx2.sh python bench_exact_all.py

``_numpy_kernels.EXACT_ALL`` (every row of the T = 1 forward by the float64 ``exp``,
and the gradient's float64 path) is NumPy's AVX-512 flag; this script sets it to each
value in turn, as ``pip install crossent`` alone runs the loss (Numba made
unavailable), on ``bench_softmax_ce.py``'s float32 logits, random and peaked, for the
forward (``softmax_cross_entropy``) and the gradient (``softmax_cross_entropy_grad``
into a reused buffer), with torch eager (``F.cross_entropy``, forward and
forward+backward) taking its turns too. Run under ``emulate_avx2.sh`` it measures the
choice for AVX2 machines (an emulation on this CPU: see that script). Each turn is
three calls after a 0.3 s pause, the last two timed; medians are printed with ratios,
and the losses of both settings, which should agree to a float32 ulp or so.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import numpy as np

import crossent
from bench_softmax_ce import make_logits
from crossent.losses import _cpu_kernels, _numpy_kernels

from _machine import cpu_name, interleaved_wall_medians, vector_width


def _setting(value: bool, fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` run with ``EXACT_ALL`` set to ``value``."""

    def run() -> object:
        _numpy_kernels.EXACT_ALL = value
        return fn()

    return run


def compare(kind: str, args: argparse.Namespace) -> None:
    """One kind of logits: both settings and torch eager in turns; prints the medians."""
    import torch
    import torch.nn.functional as F  # noqa: N812 - the name everyone reads

    logits, labels = make_logits(args.rows, args.classes, kind)
    z, y = torch.from_numpy(logits), torch.from_numpy(labels)
    out = np.empty_like(logits)

    def torch_grad() -> object:
        leaf = z.detach().requires_grad_(True)
        F.cross_entropy(leaf, y).backward()
        return leaf.grad

    def forward() -> float:
        return float(crossent.softmax_cross_entropy(logits, labels))

    def gradient() -> object:
        return crossent.softmax_cross_entropy_grad(logits, labels, out=out)

    tasks: dict[str, dict[str, Callable[[], object]]] = {
        "forward": {
            "EXACT_ALL on": _setting(True, forward),
            "EXACT_ALL off": _setting(False, forward),
            "torch eager": lambda: F.cross_entropy(z, y),
        },
        "gradient": {
            "EXACT_ALL on": _setting(True, gradient),
            "EXACT_ALL off": _setting(False, gradient),
            "torch eager": torch_grad,
        },
    }
    losses = {value: _setting(value, forward)() for value in (True, False)}
    for task, calls in tasks.items():
        for fn in calls.values():
            fn()
        median = interleaved_wall_medians(calls, args.turns)
        eager = median["torch eager"]
        print(
            f"{kind} {task}: "
            + ", ".join(f"{name} {t:.3f} s ({t / eager:.2f}x eager)" for name, t in median.items())
            + f"; on / off {median['EXACT_ALL on'] / median['EXACT_ALL off']:.2f}",
            flush=True,
        )
    print(f"{kind} losses: on {losses[True]:.9g}, off {losses[False]:.9g}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--classes", type=int, default=32000)
    args = parser.parse_args()
    _cpu_kernels.available = lambda: False  # type: ignore[method-assign]
    import torch  # noqa: F401 - before the machine line, which reports its capability

    default = _numpy_kernels.EXACT_ALL
    print(
        f"machine: {cpu_name()}, {vector_width()}, load average {os.getloadavg()[0]:.2f}; "
        f"EXACT_ALL here: {default}"
    )
    try:
        for kind in ("random", "peaked"):
            compare(kind, args)
    finally:
        _numpy_kernels.EXACT_ALL = default


if __name__ == "__main__":
    main()
