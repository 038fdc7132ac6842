"""Issue 13 (branch leftovers14): the cost of scaling the class weights of ``'mean'``
unconditionally (the branch off the CPU and while compiling) against reading the largest
weight on the host and leaving ordinary weights alone (the CPU's eager branch).

    PYTHONPATH=src python benchmarks/bench_weight_scaling_ab.py [--rounds 15]

``crossent.torch.cross_entropy(logits, labels, weight=w)`` (``'mean'``, float32, weights in
[0.5, 1.5)) forward only, on the CPU, with ``_reduction.reads_on_host`` as it is (host)
or patched to ``False`` (scaled: the device operations ``power_of_two_scaled``), and
``mean_scaled_weight`` alone. Thread CPU time, one torch thread, rounds interleaved
(``_machine.interleaved_thread_times``): the minimum and median of the rounds.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch

import crossent.torch as ct
from crossent.torch import _reduction

from _machine import interleaved_thread_times

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--rounds", type=int, default=15)
args = parser.parse_args()
torch.set_num_threads(1)
host_branch = _reduction.reads_on_host


def branch(host: bool, fn: Callable[[], object]) -> Callable[[], object]:
    def call() -> object:
        _reduction.reads_on_host = host_branch if host else (lambda weight, **_: False)
        try:
            return fn()
        finally:
            _reduction.reads_on_host = host_branch

    return call


def us(seconds: list[float]) -> str:
    return f"{min(seconds) * 1e6:.1f} / {statistics.median(seconds) * 1e6:.1f}"


print("| call (float32) | host: min / median us | scaled: min / median us | ratio of minima |")
print("|---|---|---|---|")
g = torch.Generator().manual_seed(0)
for n, c, rounds in ((8, 10, args.rounds * 20), (4096, 32000, args.rounds)):
    z = torch.randn(n, c, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    w = torch.rand(c, generator=g) + 0.5
    calls = {
        f"cross_entropy ({n}, {c})": lambda z=z, y=y, w=w: ct.cross_entropy(z, y, weight=w),
        f"mean_scaled_weight ({c},)": lambda w=w: _reduction.mean_scaled_weight(w),
    }
    for case, fn in calls.items():
        host, scaled = branch(True, fn), branch(False, fn)
        times = interleaved_thread_times({True: host, False: scaled}, rounds)
        print(
            f"| {case} | {us(times[True])} | {us(times[False])} | "
            f"{min(times[False]) / min(times[True]):.3f} |"
        )
        if case.startswith("cross_entropy"):  # the same bits on both branches
            assert torch.equal(host(), scaled())
