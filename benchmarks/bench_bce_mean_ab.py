"""Issue 13 (branch bcew1): is the weighted BCE ``'mean'`` slower since torchweight1?

    PYTHONPATH=$PWD/src python benchmarks/bench_bce_mean_ab.py --rounds 30

In one process, calls interleaved: ``crossent.torch.binary_cross_entropy_with_logits``
forward and backward of 10^6 float32 logits with an elementwise ``weight`` in
``[0.5, 2]`` and with ``pos_weight=2``, ``_binary.mean_of_terms`` as it is (the
``_overflowed`` host read of the float64 sum added by torchweight1) and as it was before
(the float64 sum by the count, ``_before``). Prints the minimum and median of wall and
process CPU milliseconds per call, and the cost of ``_overflowed`` alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import torch

import crossent.torch as ct
from crossent import losses
from crossent.torch import _binary

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--rounds", type=int, default=30)
args = parser.parse_args()

now = _binary.mean_of_terms


def _before(
    x: torch.Tensor, t: torch.Tensor, w: Any, pw: Any, eps: float, validate: bool
) -> torch.Tensor:
    """``mean_of_terms`` as merge 91177bd9^1 formed the ``'mean'`` (``_loss``)."""
    loss = losses.sigmoid_cross_entropy(
        x, t, weight=w, pos_weight=pw, label_smoothing=eps, reduction="none", validate=validate
    )
    return (loss.sum(dtype=torch.float64) / max(x.numel(), 1)).to(loss.dtype)


g = torch.Generator().manual_seed(0)
x = torch.randn(1_000_000, generator=g).requires_grad_()
t = torch.rand(1_000_000, generator=g)
v = torch.rand(1_000_000, generator=g) * 1.5 + 0.5
two = torch.tensor(2.0)
cases = {
    "weight": lambda: ct.binary_cross_entropy_with_logits(x, t, weight=v).backward(),
    "pos_weight": lambda: ct.binary_cross_entropy_with_logits(x, t, pos_weight=two).backward(),
}
versions = {"now": now, "before": _before}
times: dict[tuple[str, str], list[tuple[float, float]]] = {}
print(f"load before: {os.getloadavg()}")
for call in cases.values():  # warm-up (Numba's gradient kernel)
    for version in versions.values():
        _binary.mean_of_terms = version
        call()
for _ in range(args.rounds):
    for case, call in cases.items():
        for name, version in versions.items():
            _binary.mean_of_terms = version
            x.grad = None
            w0, c0 = time.perf_counter(), time.process_time()
            call()
            times.setdefault((case, name), []).append(
                (time.perf_counter() - w0, time.process_time() - c0)
            )
_binary.mean_of_terms = now
print(f"load after: {os.getloadavg()}")
print("case        version  wall min/median ms  CPU min/median ms")
for (case, name), runs in times.items():
    wall, cpu = [r[0] * 1e3 for r in runs], [r[1] * 1e3 for r in runs]
    print(
        f"{case:11s} {name:7s}  {min(wall):7.2f} / {statistics.median(wall):7.2f}"
        f"   {min(cpu):7.2f} / {statistics.median(cpu):7.2f}"
    )
total = torch.tensor(1.0, dtype=torch.float64)
start = time.perf_counter()
for _ in range(10_000):
    _binary._overflowed(total)
print(f"_overflowed alone: {(time.perf_counter() - start) * 1e2:.2f} us per call")
