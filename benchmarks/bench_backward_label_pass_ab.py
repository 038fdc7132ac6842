"""Issue 13: the fused CPU backward without the labels' second range pass, A/B in one process.

    git archive f845b61 src | tar -x -C /tmp/vp_base
    PYTHONPATH=src python benchmarks/bench_backward_label_pass_ab.py --base /tmp/vp_base/src

This tree's ``crossent.torch._backend.label_gradient`` (the backward's fused problem reads
no label range: the forward op checked the same, saved tensor) against another tree's
(``--base``), loaded beside it by ``_machine.modules_beside`` (its ``label_batch`` call
takes the default, the range pass). Rounds interleave the two
(``_machine.interleaved_thread_times``); thread CPU time with one torch thread, the
minimum and median of the rounds. Float32 logits (standard normal x 3), 5% of the rows
``ignore_index`` (-100), the forward's ``lse`` and ``log p_y`` from this tree.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType

import numpy as np
import torch

from crossent.torch import _backend as backend_new

from _machine import ab_arguments, ab_row, interleaved_thread_times, modules_beside

args = ab_arguments(__doc__)
torch.set_num_threads(1)
(backend_old,) = modules_beside(args.base, "_backend")
opts = backend_new.options(label_smoothing=0.0, z_loss=0.0, temperature=1.0, soft_cap=None)
rng = np.random.default_rng(0)


def case(n: int, v: int) -> dict[str, np.ndarray]:
    z = (rng.standard_normal((n, v)) * 3).astype(np.float32)
    y = rng.integers(0, v, n)
    y[rng.random(n) < 0.05] = -100
    _, lse, log_p = backend_new.label_rows(z, y, None, opts, ignore_index=-100, validate=True)
    return {"z": z, "y": y, "lse": lse, "log_p": log_p, "u": np.ones(n)}


def gradient(mod: ModuleType, c: dict[str, np.ndarray]) -> Callable[[], None]:
    def f() -> None:
        mod.label_gradient(
            c["z"], c["y"], None, c["lse"], c["log_p"], c["u"], opts, ignore_index=-100, out=None
        )

    return f


shapes = [(1_000_000, 2), (100_000, 10), (4096, 32000)]
cases = {}
for n, v in shapes:
    c = case(n, v)
    cases[f"N={n} V={v}"] = (gradient(backend_old, c), gradient(backend_new, c))
calls = {(name, tree): pair[i] for name, pair in cases.items() for i, tree in enumerate("AB")}
seconds = interleaved_thread_times(calls, args.rounds)
print(f"float32, 5% ignored rows, 1 thread, {args.rounds} rounds; load {os.getloadavg()}")
for name in cases:
    print(ab_row(name, seconds[name, "A"], seconds[name, "B"], ("base", "this")))
