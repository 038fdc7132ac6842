"""Issue 13 (branch torchrow1), A/B in one process: the cost to ordinary inputs of the
float64 re-forming of rows past float32's range in the torch ``'mean'``.

    PYTHONPATH=src python benchmarks/bench_row_overflow_mean_ab.py --base OTHER/src [--rounds 7]

This tree against another (``--base``, e.g. ``git archive main src | tar -x -C /tmp/base``)
on ordinary float32 data (no row overflows): ``cross_entropy``'s forward of a
4096 x 32000 ``'mean'`` (the other tree's ``_functional`` loaded beside this one,
``_machine.modules_beside``: its ``_reduced`` without the read of the float64 sum), and
``linear_cross_entropy``'s forward pass with its ``'mean'`` (the other tree's
``_linear.forward_pass``, float32 rows, and its reduction; this tree's float64 rows
rounded to float32 and ``_ops._reduced_rows``' read of the sum), and
``vocab_parallel_cross_entropy`` forward and backward on a gloo group of this process
alone (the other tree's ``_vocab_parallel``: no float64 twin of the rows). Process CPU time (the
fused kernels run on Numba's threads), one torch thread (the 2-core machine is shared),
rounds interleaved after a warm-up call each: the minimum and median of the rounds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from types import ModuleType

import torch
import torch.distributed

from crossent.torch import _backend, _functional, _ops
from crossent.torch import _linear as lin_new
from crossent.torch import _vocab_parallel as vp_new
from crossent.torch._reduction import weighted_mean

from _machine import ab_arguments, ab_row, gloo_world_of_one, modules_beside

args = ab_arguments(__doc__)
torch.set_num_threads(1)
fun_old, lin_old, vp_old = modules_beside(args.base, "_functional", "_linear", "_vocab_parallel")
gloo_world_of_one()
g = torch.Generator().manual_seed(0)
N, V = 4096, 32000
z = torch.randn(N, V, generator=g) * 3
y = torch.randint(0, V, (N,), generator=g)
NL, D = 512, 128
h = torch.randn(NL, D, generator=g)
W = torch.randn(V, D, generator=g) * 0.05
yl = torch.randint(0, V, (NL,), generator=g)
opts = _backend.options(label_smoothing=0.0, z_loss=0.0, temperature=1.0, soft_cap=None)


def forward(mod: ModuleType) -> Callable[[], None]:
    def f() -> None:
        mod.cross_entropy(z, y)

    return f


def linear(mod: ModuleType, new: bool) -> Callable[[], None]:
    def f() -> None:
        p = mod.LinearProblem.build(
            h, W, None, yl, None, opts, ignore_index=None, chunk_size=None, vocab_chunk=None
        )
        rows = mod.forward_pass(p, row_scale=None)[0]
        if new:
            _ops._reduced_rows(rows.to(p.acc), p, "mean", rows)
        else:
            total = rows.sum(dtype=torch.float64)
            weighted_mean(total, p.omega.sum(dtype=torch.float64)).to(rows.dtype)

    return f


NV = 1024
zv = z[:NV].clone()


def vocab_parallel(mod: ModuleType) -> Callable[[], None]:
    def f() -> None:
        zz = zv.clone().requires_grad_()
        mod.vocab_parallel_cross_entropy(zz, y[:NV]).backward()

    return f


cases = {
    f"cross_entropy forward, {N} x {V} float32 'mean'": (forward(fun_old), forward(_functional)),
    f"linear forward pass + 'mean', {NL} x {D} x {V} float32": (
        linear(lin_old, False),
        linear(lin_new, True),
    ),
    f"vocab-parallel forward + backward, {NV} x {V} float32 'mean'": (
        vocab_parallel(vp_old),
        vocab_parallel(vp_new),
    ),
}
calls = {(case, tree): pair[i] for case, pair in cases.items() for i, tree in enumerate("AB")}
for fn in calls.values():
    fn()
seconds: dict[tuple[str, str], list[float]] = {key: [] for key in calls}
for _ in range(args.rounds):
    for key, fn in calls.items():
        start = time.process_time()
        fn()
        seconds[key].append(time.process_time() - start)
print(f"1 thread, {args.rounds} rounds, load {os.getloadavg()}")
for case in cases:
    print(ab_row(case, seconds[case, "A"], seconds[case, "B"], ("base", "this")))
torch.distributed.destroy_process_group()
