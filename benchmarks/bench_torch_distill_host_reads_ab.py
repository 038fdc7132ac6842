"""Host reads of ``crossent.torch.distillation_loss`` (issue 13), A/B/C in one process.

    PYTHONPATH=src python benchmarks/bench_torch_distill_host_reads_ab.py [--rounds 15]

A: main's body (b4c3614), its two reads past validation (the generic path's read of the
near-row flags, then ``.item()`` of the result's finiteness; a third where the teacher
requires a gradient); B: this tree's, one ``tolist`` of both (and the teacher's far
gaps); C: the branch-free alternative, this tree's body with the generic path forming
every row's near form then picking (as in a ``jax.jit`` call), no flag read. Ordinary
logits (standard normal x 3), T = 2, ``'mean'``, forward + backward of the student:
256 x 32000 float32, and 8 x 10 float32 (200 calls per round); ``--teacher-grad``: the
teacher requires a gradient too. Rounds interleave A, B and C
(:func:`rotated_thread_times`: each round starts at the next case, since the first
large call of a round pays the page faults of the memory freed before it); thread CPU
time with one torch thread: min and median of the rounds. On a CPU a read costs no
stall; on a GPU each is a sync. Indicative: an A/A run (main's body in A and C) gave
A's 256 x 32000 a min 1.4 to 2 times C's on the loaded 2-core machine.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from unittest import mock

import torch

import crossent.torch as ct
from crossent import losses
from crossent.losses import _distill
from crossent.torch import _far_distillation as far

from _machine import ab_row

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--rounds", type=int, default=15)
parser.add_argument("--teacher-grad", action="store_true")
args = parser.parse_args()
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)


def main_body(z: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Main's ``distillation_rows_checked`` on the common path (b4c3614), for A."""
    loss = losses.distillation_loss(z, v, axis=1, temperature=2.0, reduction="mean")
    finite = math.isfinite(loss.item())
    if torch.is_grad_enabled() and v.requires_grad:
        gaps = far._far_gap_rows(z, 2.0, 1) | far._far_gap_rows(v, 2.0, 1)
        finite = finite and not bool(gaps.any())
    assert finite
    return loss


def this_tree(z: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return ct.distillation_loss(z, v, temperature=2.0, reduction="mean")


def branch_free(z: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    with mock.patch.object(_distill, "_may_hold_one", return_value=True):
        return losses.distillation_loss(z, v, axis=1, temperature=2.0, reduction="mean")


def case(
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    z: torch.Tensor,
    v: torch.Tensor,
    calls: int,
) -> Callable[[], None]:
    """``calls`` forward + backward calls of ``loss`` on copies of ``z`` and ``v``."""

    def f() -> None:
        for _ in range(calls):
            zz = z.clone().requires_grad_()
            vv = v.clone().requires_grad_(args.teacher_grad)
            loss(zz, vv).backward()

    return f


def rotated_thread_times(
    cases: dict[tuple[str, str], Callable[[], None]], rounds: int
) -> dict[tuple[str, str], list[float]]:
    """Each case's thread CPU seconds in ``rounds`` rounds after one warm-up call each;
    round ``r`` runs the cases in turn from the ``r``-th on (a case's place in a round
    rotates)."""
    keys = list(cases)
    for key in keys:
        cases[key]()
    seconds: dict[tuple[str, str], list[float]] = {key: [] for key in keys}
    for r in range(rounds):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            start = time.thread_time()
            cases[key]()
            seconds[key].append(time.thread_time() - start)
    return seconds


shapes = {"256 x 32000": (256, 32000, 1), "8 x 10, 200 calls": (8, 10, 200)}
inputs = {
    name: (torch.randn(n, c, generator=g) * 3, torch.randn(n, c, generator=g) * 3)
    for name, (n, c, _) in shapes.items()
}  # (one pair for every tree: their memory alike)
trees = (("A", main_body), ("B", this_tree), ("C", branch_free))
calls = {
    (name, tree): case(fn, *inputs[name], shape[2])
    for name, shape in shapes.items()
    for tree, fn in trees
}
seconds = rotated_thread_times(calls, args.rounds)
grad = ", teacher requires grad" if args.teacher_grad else ""
print(f"float32, T=2, 'mean', forward + backward{grad}, 1 thread, {args.rounds} rounds")
print(f"load {os.getloadavg()}")
for name in shapes:
    print(ab_row(name, seconds[name, "A"], seconds[name, "B"], ("main", "one read")))
    print(ab_row(name, seconds[name, "A"], seconds[name, "C"], ("main", "branch-free")))
