"""Issue 13 vocab-parallel checks under ``torch.compile``, A/B in one process.

    git archive f845b61 src | tar -x -C /tmp/vp_base
    PYTHONPATH=src python benchmarks/bench_vp_label_check_ab.py --base /tmp/vp_base/src

This tree's ``crossent.torch._vocab_parallel`` (the label range, class weight, logit
checks and the far-row / float32-smoothing exact paths run on every call) against a
tree's where they ran only eagerly (``--base``; f845b61 is the commit before the fix),
loaded beside it by ``_machine.modules_beside``. Rounds interleave the two
(``_machine.interleaved_thread_times``); thread CPU time with one torch thread, the
minimum and median of the rounds.

A realistic one-rank shard (a world of one, gloo): N = 2048 rows (5% ``ignore_index``),
one rank's V = 8000 classes (of a 32k vocabulary on 4 ranks), float32 logits, class
weights, label smoothing 0.1; forward + backward of ``vocab_parallel_cross_entropy`` and
of ``vocab_parallel_linear_cross_entropy`` (D = 512). Each in the eager branch and in
the branch a ``torch.compile`` trace takes (``torch.compiler.is_compiling`` patched to
return True: a real compiled call over gloo hangs in torch 2.13 here; after the graph
breaks a compiled call runs this same Python).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType
from unittest import mock

import torch
import torch.distributed as dist

from crossent.torch import _vocab_parallel as vp_new

from _machine import (
    ab_arguments,
    ab_row,
    gloo_world_of_one,
    interleaved_thread_times,
    modules_beside,
)

args = ab_arguments(__doc__)
torch.set_num_threads(1)
(vp_old,) = modules_beside(args.base, "_vocab_parallel")
gloo_world_of_one()
g = torch.Generator().manual_seed(0)
N, D, V = 2048, 512, 8000
z = torch.randn(N, V, generator=g) * 3
y = torch.randint(0, V, (N,), generator=g)
y[torch.rand(N, generator=g) < 0.05] = -100
h = torch.randn(N, D, generator=g)
W = torch.randn(V, D, generator=g) * 0.05
w = torch.rand(V, generator=g) + 0.5


def logits(mod: ModuleType, tracing: bool) -> Callable[[], None]:
    def f() -> None:
        zz = z.clone().requires_grad_()
        with mock.patch("torch.compiler.is_compiling", return_value=tracing):
            mod.vocab_parallel_cross_entropy(zz, y, weight=w, label_smoothing=0.1).backward()

    return f


def linear(mod: ModuleType, tracing: bool) -> Callable[[], None]:
    def f() -> None:
        hh = h.clone().requires_grad_()
        ww = W.clone().requires_grad_()
        with mock.patch("torch.compiler.is_compiling", return_value=tracing):
            mod.vocab_parallel_linear_cross_entropy(
                hh, ww, y, class_weight=w, label_smoothing=0.1
            ).backward()

    return f


cases = {
    f"{name}, {branch}": (make(vp_old, tracing), make(vp_new, tracing))
    for name, make in (("logits", logits), ("linear", linear))
    for branch, tracing in (("eager", False), ("tracing branch", True))
}
calls = {(case, tree): pair[i] for case, pair in cases.items() for i, tree in enumerate("AB")}
seconds = interleaved_thread_times(calls, args.rounds)
print(f"N={N} D={D} V={V} float32, weights, eps=0.1, 1 thread, {args.rounds} rounds")
print(f"load {os.getloadavg()}")
for case in cases:
    print(ab_row(case, seconds[case, "A"], seconds[case, "B"], ("base", "this")))
dist.destroy_process_group()
