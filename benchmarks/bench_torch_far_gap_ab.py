"""Issue 13 far gaps, A/B in one process: the float64 paths that now check for inf rows.

    PYTHONPATH=src python benchmarks/bench_torch_far_gap_ab.py --base OTHER/src [--rounds 15]

This tree's ``crossent.torch._launch``, ``_linear`` and ``_vocab_parallel`` against another
tree's (``--base``, e.g. ``git archive main src | tar -x -C /tmp/base``), loaded beside
them by ``_machine.modules_beside``. Rounds interleave the two
(``_machine.interleaved_thread_times``); thread CPU time with one torch thread (the
2-core machine is shared), the minimum and median of the rounds. Ordinary logits
(standard normal x 3, nothing overflows), float64, T = 0.5, label smoothing 0.1, each
forward + backward: the generic label path (``_launch.forward`` / ``backward``), the
fused kernels' forward of a small float32 batch (8 x 10, T = 1, 200 calls: the per-call
check), probability targets (``_launch.target_rows`` under autograd), ``_linear.forward_pass``
with the gradients formed, and ``vocab_parallel_cross_entropy`` (a world of one, gloo).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType

import torch
import torch.distributed as dist

from crossent.torch import _backend
from crossent.torch import _launch as launch_new
from crossent.torch import _linear as lin_new
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
launch_old, lin_old, vp_old = modules_beside(args.base, "_launch", "_linear", "_vocab_parallel")
gloo_world_of_one()
g = torch.Generator().manual_seed(0)
N, D, V = 256, 256, 8000
z = torch.randn(N, V, generator=g, dtype=torch.float64) * 3
y = torch.randint(0, V, (N,), generator=g)
t = torch.softmax(torch.randn(N, V, generator=g, dtype=torch.float64), -1)
h = torch.randn(N, D, generator=g, dtype=torch.float64)
W = torch.randn(V, D, generator=g, dtype=torch.float64) * 0.05
opts = _backend.options(label_smoothing=0.1, z_loss=0.0, temperature=0.5, soft_cap=None)


def labels(mod: ModuleType) -> Callable[[], None]:
    def f() -> None:
        _, lse, log_p = mod.forward(z, y, None, opts, ignore_index=-100)
        ones = torch.ones(N, dtype=torch.float64)
        mod.backward(ones, z, y, None, lse, log_p, opts, ignore_index=-100)

    return f


small = torch.randn(8, 10, generator=g) * 3
small_y = torch.randint(0, 10, (8,), generator=g)
plain = _backend.options(label_smoothing=0.0, z_loss=0.0, temperature=1.0, soft_cap=None)


def fused_small(mod: ModuleType) -> Callable[[], None]:
    def f() -> None:
        for _ in range(200):
            mod.forward(small, small_y, None, plain, ignore_index=-100)

    return f


def targets(mod: ModuleType) -> Callable[[], None]:
    def f() -> None:
        zz = z.clone().requires_grad_()
        mod.target_rows(zz, t, None, opts).sum().backward()

    return f


def linear(mod: ModuleType) -> Callable[[], None]:
    def f() -> None:
        p = mod.LinearProblem.build(
            h, W, None, y, None, opts, ignore_index=None, chunk_size=None, vocab_chunk=None
        )
        mod.forward_pass(p, row_scale=torch.full((N,), 1.0 / N, dtype=torch.float64))

    return f


def vocab_parallel(mod: ModuleType) -> Callable[[], None]:
    def f() -> None:
        zz = z.clone().requires_grad_()
        mod.vocab_parallel_cross_entropy(zz, y, label_smoothing=0.1, temperature=0.5).backward()

    return f


cases = {
    "labels (generic path)": (labels(launch_old), labels(launch_new)),
    "fused float32 8 x 10, 200 forwards": (fused_small(launch_old), fused_small(launch_new)),
    "probability targets": (targets(launch_old), targets(launch_new)),
    "linear, gradients formed": (linear(lin_old), linear(lin_new)),
    "vocab-parallel": (vocab_parallel(vp_old), vocab_parallel(vp_new)),
}
calls = {(case, tree): pair[i] for case, pair in cases.items() for i, tree in enumerate("AB")}
seconds = interleaved_thread_times(calls, args.rounds)
print(f"N={N} D={D} V={V} float64, T=0.5, eps=0.1, 1 thread, {args.rounds} rounds")
print(f"load {os.getloadavg()}")
for case in cases:
    print(ab_row(case, seconds[case, "A"], seconds[case, "B"], ("base", "this")))
dist.destroy_process_group()
