"""Issue 13 far gaps of ``crossent.torch.distillation_loss``, A/B in one process.

    PYTHONPATH=src python benchmarks/bench_torch_distill_far_ab.py [--rounds 15]

A: main's body of ``crossent.torch.distillation_loss``, the generic
``crossent.distillation_loss`` on the tensors (classes on axis 1); B: this tree's, which
adds one finiteness read of the result (and a T^2 range check of a Python float).
Ordinary logits (standard normal x 3, nothing far), T = 2, ``'mean'``, forward +
backward of the student: 256 x 32000 float32, and 8 x 10 float32 (200 calls per
round). Rounds interleave A and B (``_machine.interleaved_thread_times``); thread CPU
time with one torch thread (the 2-core machine is shared): min and median of the rounds.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import torch

import crossent
import crossent.torch as ct

from _machine import ab_row, interleaved_thread_times

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--rounds", type=int, default=15)
args = parser.parse_args()
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)


def main_body(z: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Main's ``crossent.torch.distillation_loss`` (6ec1c5c), for A."""
    return crossent.distillation_loss(z, v, axis=1, temperature=2.0, reduction="mean")


def this_tree(z: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return ct.distillation_loss(z, v, temperature=2.0, reduction="mean")


def case(
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], n: int, c: int, calls: int
) -> Callable[[], None]:
    z = torch.randn(n, c, generator=g) * 3
    v = torch.randn(n, c, generator=g) * 3

    def f() -> None:
        for _ in range(calls):
            zz = z.clone().requires_grad_()
            loss(zz, v).backward()

    return f


shapes = {"256 x 32000": (256, 32000, 1), "8 x 10, 200 calls": (8, 10, 200)}
calls = {
    (name, tree): case(fn, *shape)
    for name, shape in shapes.items()
    for tree, fn in (("A", main_body), ("B", this_tree))
}
seconds = interleaved_thread_times(calls, args.rounds)
print(f"float32, T=2, 'mean', forward + backward, 1 thread, {args.rounds} rounds")
print(f"load {os.getloadavg()}")
for name in shapes:
    print(ab_row(name, seconds[name, "A"], seconds[name, "B"], ("main", "this")))
