"""Issue 13 overflow edges, A/B in one process: the vocab-parallel and fused linear losses.

    PYTHONPATH=src python benchmarks/bench_torch_overflow_edges_ab.py --base OTHER/src [--rounds 15]

This tree's ``crossent.torch._vocab_parallel`` and ``_linear`` against another tree's
(``--base``, e.g. ``git archive main src | tar -x -C /tmp/base``), whose two modules are
loaded beside them (as ``crossent.torch._vocab_parallel_base`` and ``_linear_base``; the rest of
``crossent.torch`` is this tree's). Rounds interleave the two, alternating which goes
first; thread CPU time with one torch thread (the 2-core machine is shared), the minimum
and median of the rounds. Cases: ``vocab_parallel_cross_entropy`` (a world of one,
gloo) forward + backward with and without label smoothing, and ``_linear.forward_pass``
with the gradients formed (``'mean'``) or followed by ``backward_pass`` (``'none'``).
"""

from __future__ import annotations

import os
import statistics
import time

import torch

from crossent.torch import _backend
from crossent.torch import _linear as lin_new
from crossent.torch import _vocab_parallel as vp_new

from _machine import ab_arguments, gloo_world_of_one, modules_beside

args = ab_arguments(__doc__)
torch.set_num_threads(1)
vp_old, lin_old = modules_beside(args.base, "_vocab_parallel", "_linear")
gloo_world_of_one()
g = torch.Generator().manual_seed(0)
N, D, V = 512, 512, 32000
z = (torch.randn(N, V, generator=g) * 3).requires_grad_()
y = torch.randint(0, V, (N,), generator=g)
h = torch.randn(N, D, generator=g)
W = torch.randn(V, D, generator=g) * 0.05


def vp(mod, eps):
    def f():
        z.grad = None
        mod.vocab_parallel_cross_entropy(z, y, label_smoothing=eps).backward()

    return f


def lin(mod, eps, formed):
    opts = _backend.options(label_smoothing=eps, z_loss=0.0, temperature=1.0, soft_cap=None)

    def f():
        p = mod.LinearProblem.build(
            h, W, None, y, None, opts, ignore_index=None, chunk_size=None, vocab_chunk=None
        )
        if formed:
            mod.forward_pass(p, row_scale=torch.full((N,), 1.0 / N))
        else:
            _, stats, logp, _ = mod.forward_pass(p, row_scale=None)
            mod.backward_pass(p, stats, logp, torch.ones(N), bias=False)

    return f


cases = {}
for eps in (0.0, 0.1):
    cases[f"vp eps={eps}"] = (vp(vp_old, eps), vp(vp_new, eps))
    cases[f"linear formed eps={eps}"] = (lin(lin_old, eps, True), lin(lin_new, eps, True))
cases["linear none eps=0.0"] = (lin(lin_old, 0.0, False), lin(lin_new, 0.0, False))
res = {k: ([], []) for k in cases}
rounds = args.rounds
for r in range(rounds + 1):
    for k, (old, new) in cases.items():
        for i, f in ((0, old), (1, new)) if r % 2 else ((1, new), (0, old)):
            a = time.thread_time()
            f()
            t = time.thread_time() - a
            if r:
                res[k][i].append(t)
print(f"N={N} D={D} V={V} float32, 1 thread, {rounds} rounds, load {os.getloadavg()}")
for k, (o, n) in res.items():
    mains, these = (
        f"{min(o):.3f} / {statistics.median(o):.3f}",
        f"{min(n):.3f} / {statistics.median(n):.3f}",
    )
    print(f"| {k} | base min / med {mains} | this min / med {these} | {min(n) / min(o):.3f} |")
