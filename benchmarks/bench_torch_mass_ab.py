"""KL of PyTorch probabilities, random and nearly equal rows: this tree against others, A/B.

The nearly equal rows take the careful form (issue 13: the non-negative terms plus the
exactly rounded mass difference), whose mass difference moved from ``math.fsum`` per row
on the host to an exact extraction in PyTorch; random rows keep the plain sum. Each
``--against`` source folder's ``crossent`` is imported beside this one (as
``bench_kl_mixed_ab.py`` does) and the calls alternate, timed by this thread's CPU time
with PyTorch on one thread (``torch.set_num_threads(1)``), the best of ``--repeats``::

    python benchmarks/bench_torch_mass_ab.py 1000 1000 --against /tmp/main/src
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import numpy as np

import crossent
from bench_kl_mixed_ab import _copy

from _machine import interleaved_thread_times


def _rows(rows: int, classes: int, noise: float | None) -> tuple[Any, Any]:
    """Softmax rows of logits ``3 z`` and, for ``noise``, the same logits plus ``noise``
    times Gaussian noise (None: other random logits)."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((rows, classes)) * 3
    y = (
        rng.standard_normal(z.shape) * 3
        if noise is None
        else z + rng.standard_normal(z.shape) * noise
    )
    return tuple(np.exp(x - np.log(np.exp(x).sum(axis=1, keepdims=True))) for x in (z, y))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", type=int)
    parser.add_argument("classes", type=int)
    parser.add_argument("--against", nargs="+", default=[], help="other trees' src folders")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    trees = {"this": crossent, **{a: _copy(a, i + 1) for i, a in enumerate(args.against)}}
    inputs = {}
    for label, noise in (("random", None), ("nearly equal 1e-9", 1e-9), ("1e-13", 1e-13)):
        p, q = _rows(args.rows, args.classes, noise)
        for dtype in (torch.float64, torch.float32):
            name = f"{str(dtype)[6:]} {label}"
            inputs[name] = (torch.from_numpy(p).to(dtype), torch.from_numpy(q).to(dtype))
    cases = {
        (case, tree): (lambda m=module, a=a, b=b: m.kl_divergence(a, b, validate=False))
        for case, (a, b) in inputs.items()
        for tree, module in trees.items()
    }
    print(f"load average before: {os.getloadavg()}")
    seconds = interleaved_thread_times(cases, args.repeats)
    print(f"load average after: {os.getloadavg()}")
    print(f"{args.rows} x {args.classes}, best thread CPU ms of {args.repeats}")
    for case in inputs:
        cells = [f"{tree}: {min(seconds[case, tree]) * 1e3:8.2f}" for tree in trees]
        print(f"  {case:28s} " + "  ".join(cells))


if __name__ == "__main__":
    main(sys.argv[1:])
