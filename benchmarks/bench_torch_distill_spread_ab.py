"""The small-spread screen of ``crossent.torch.distillation_loss`` (issue 13), A/B.

    cd benchmarks && PYTHONPATH=../src:. python bench_torch_distill_spread_ab.py \
        --base /tmp/old/src [--rounds 15] [--calls 200]

Branch distilltorch14, in one process. A: the crossent package under ``--base``
(imported as ``crossent_against``, as ``bench_small_inputs --against`` does); B: this
tree's. Forward and backward of the
student, one torch thread, ordinary logits (standard normal x 3, teacher likewise),
``T = 2``, ``'mean'``: the cases the screen touches (a 1-D float64 call, the generic
path's ordinary call where the student requires a gradient; 2-D float64 whose teacher
requires a gradient) and one it leaves alone (1-D float32). Thread CPU seconds of
``--calls`` calls per round, rounds interleaved (``_machine.interleaved_thread_times``);
min and median of the rounds.

Branch distilltorch15 added the reverse direction (the CPU op's 2-D calls, ordinary and
near: a teacher of the student's logits plus 0.01 x normal noise, D(s || t)
below ``NEAR_CEILING``, every row asking for the spread; a 1-D near call, the generic
path; 8 x 10 whose teacher requires a gradient, the generic path's spread read) and
one compiled call (``torch.compile``, ``aot_eager``, 8 x 10 float64 whose
teacher requires a gradient, forward: the graph's gradient-row flags; compiled in the
first round).

Branch distillonce2 added a reverse near 8 x 10 call whose teacher requires a gradient
(the eager near rows' flags), a compiled reverse one, and very near CPU-op calls
(noise 1e-7: every row's gradient ``NearRows``', the host rows); ``--cases`` picks
cases by a part of their names (comma-separated).
"""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Callable
from typing import Any

import torch

import crossent.torch as ct
from bench_evaluation import against

from _machine import ab_row, interleaved_thread_times

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--base", required=True, help="the other tree's src folder")
parser.add_argument("--rounds", type=int, default=15)
parser.add_argument("--calls", type=int, default=200)
parser.add_argument(
    "--cases", help="only the cases whose name holds one of these (comma-separated)"
)
args = parser.parse_args()
torch.set_num_threads(1)
against(args.base)
base = importlib.import_module("crossent_against.torch")


def _case(
    module: Any,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    teacher_grad: bool,
    direction: str = "forward",
    near: bool = False,
    compiled: bool = False,
    noise_size: float = 0.01,
) -> Callable[[], None]:
    generator = torch.Generator().manual_seed(0)
    z = 3 * torch.randn(shape, generator=generator, dtype=torch.float64)
    noise = torch.randn(shape, generator=generator, dtype=torch.float64)
    v = (z + noise_size * noise if near else 3 * noise).to(dtype)
    z = z.to(dtype).requires_grad_()
    v.requires_grad_(teacher_grad)

    def loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return module.distillation_loss(a, b, temperature=2.0, direction=direction)

    call = torch.compile(loss, backend="aot_eager") if compiled else loss

    def run() -> None:
        for _ in range(args.calls):
            call(z, v).backward()

    return run


F64, F32 = torch.float64, torch.float32
CASES: dict[str, tuple[Any, ...]] = {
    "1-D 10 float64": ((10,), F64, False),
    "1-D 1000 float64": ((1000,), F64, False),
    "8 x 10 float64, teacher grad": ((8, 10), F64, True),
    "1-D 10 float32": ((10,), F32, False),
    "reverse 64 x 100 float64 (CPU op)": ((64, 100), F64, False, "reverse"),
    "reverse 64 x 100 float64 near (CPU op)": ((64, 100), F64, False, "reverse", True),
    "reverse 64 x 100 float32 near (CPU op)": ((64, 100), F32, False, "reverse", True),
    "reverse 1-D 100 float64 near": ((100,), F64, False, "reverse", True),
    "reverse 8 x 10 float64, teacher grad": ((8, 10), F64, True, "reverse"),
    "compiled 8 x 10 float64, teacher grad": ((8, 10), F64, True, "forward", False, True),
    "reverse 8 x 10 float64 near, teacher grad": ((8, 10), F64, True, "reverse", True),
    "compiled reverse 8 x 10 float64, teacher grad": ((8, 10), F64, True, "reverse", False, True),
    "64 x 100 float64 very near (CPU op)": ((64, 100), F64, False, "forward", True, False, 1e-7),
    "reverse 64 x 100 float64 very near (CPU op)": (
        (64, 100),
        F64,
        False,
        "reverse",
        True,
        False,
        1e-7,
    ),
}
if args.cases:
    wanted = args.cases.split(",")
    CASES = {k: c for k, c in CASES.items() if any(w in k for w in wanted)}
calls: dict[tuple[str, str], Callable[[], None]] = {}
for name, case in CASES.items():
    calls[(name, "A")] = _case(base, *case)
    calls[(name, "B")] = _case(ct, *case)
seconds = interleaved_thread_times(calls, args.rounds)
print(f"load average {os.getloadavg()}; {args.calls} calls a round, seconds")
print("| case | A | B | B/A |\n|---|---|---|---|")
for name in CASES:
    print(ab_row(name, seconds[(name, "A")], seconds[(name, "B")], ("A", "B")))
