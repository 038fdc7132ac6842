"""Issue 13 torch gaps, A/B in one process: the cost of leaving ignored rows unread.

    PYTHONPATH=src python benchmarks/bench_ignored_rows_ab.py --base OTHER/src [--rounds 15]

This tree against another (``--base``, e.g. ``git archive main src | tar -x -C /tmp/base``)
on ordinary finite data with a quarter of the rows ignored (``ignore_index=-100``), where
this tree does a little more: the softmax cross-entropy's NumPy paths check the logits
once (a failed check is retried on the rows that count) and the fused gradient checks
N log-sum-exps for ignored rows that are not finite; the linear and vocab-parallel
losses zero the ignored rows' hidden states (logits) per block before use. The NumPy
calls run the other tree's ``crossent`` imported beside this one
(``bench_evaluation.against``), the torch ones its ``_linear`` and ``_vocab_parallel``
(``_machine.modules_beside``; a second ``crossent.torch`` would register its custom ops
twice). Thread CPU time, one torch thread (the 2-core machine is shared), rounds
interleaved (``_machine.interleaved_thread_times``): the minimum and median of the rounds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType

import numpy as np
import torch
import torch.distributed as dist

import crossent
from bench_evaluation import against
from crossent.torch import _backend
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
lin_old, vp_old = modules_beside(args.base, "_linear", "_vocab_parallel")
np_old = against(args.base)
gloo_world_of_one()
g = torch.Generator().manual_seed(0)
N, D, V = 512, 256, 8000


def _ignoring_quarter(n: int, classes: int) -> torch.Tensor:
    y = torch.randint(0, classes, (n,), generator=g)
    y[::4] = -100
    return y


y = _ignoring_quarter(N, V)
h = torch.randn(N, D, generator=g)
W = torch.randn(V, D, generator=g) * 0.05
z = torch.randn(N, V, generator=g) * 3
opts = _backend.options(label_smoothing=0.0, z_loss=0.0, temperature=1.0, soft_cap=None)
small_z = (torch.randn(8, 10, generator=g) * 3).numpy()
small_y = _ignoring_quarter(8, 10).numpy()
small_z64 = small_z.astype(np.float64)
big_z, big_y = z.numpy(), y.numpy()


def numpy_small(package: ModuleType, logits: np.ndarray) -> Callable[[], None]:
    def f() -> None:
        for _ in range(200):
            package.softmax_cross_entropy(logits, small_y, ignore_index=-100)
            package.softmax_cross_entropy_grad(logits, small_y, ignore_index=-100)

    return f


def numpy_big(package: ModuleType) -> Callable[[], None]:
    def f() -> None:
        package.softmax_cross_entropy(big_z, big_y, ignore_index=-100)
        package.softmax_cross_entropy_grad(big_z, big_y, ignore_index=-100)

    return f


def linear(mod: ModuleType, formed: bool) -> Callable[[], None]:
    def f() -> None:
        p = mod.LinearProblem.build(
            h, W, None, y, None, opts, ignore_index=-100, chunk_size=None, vocab_chunk=None
        )
        scale = torch.full((N,), 1.0 / N)
        _, stats, log_p, _ = mod.forward_pass(p, row_scale=scale if formed else None)
        if not formed:
            mod.backward_pass(p, stats, log_p, scale, bias=False)

    return f


def vocab_parallel(mod: ModuleType) -> Callable[[], None]:
    def f() -> None:
        zz = z.clone().requires_grad_()
        mod.vocab_parallel_cross_entropy(zz, y, label_smoothing=0.1).backward()

    return f


cases = {
    "NumPy float32 8 x 10, 200 x (loss + grad)": (
        numpy_small(np_old, small_z),
        numpy_small(crossent, small_z),
    ),
    "NumPy float64 8 x 10, 200 x (loss + grad)": (
        numpy_small(np_old, small_z64),
        numpy_small(crossent, small_z64),
    ),
    f"NumPy float32 {N} x {V}, loss + grad": (numpy_big(np_old), numpy_big(crossent)),
    "linear, gradients formed": (linear(lin_old, True), linear(lin_new, True)),
    "linear, forward + backward pass ('none')": (linear(lin_old, False), linear(lin_new, False)),
    "vocab-parallel forward + backward": (vocab_parallel(vp_old), vocab_parallel(vp_new)),
}
calls = {(case, tree): pair[i] for case, pair in cases.items() for i, tree in enumerate("AB")}
seconds = interleaved_thread_times(calls, args.rounds)
print(f"N={N} D={D} V={V} float32, a quarter of the rows ignored, 1 thread, {args.rounds} rounds")
print(f"load {os.getloadavg()}")
for case in cases:
    print(ab_row(case, seconds[case, "A"], seconds[case, "B"], ("base", "this")))
dist.destroy_process_group()
