"""Issue 13 (branch torchweight1): the cost of the weighted ``'mean'``'s weight scaling.

    cd benchmarks
    git -C .. archive main src | tar -x -C /tmp/tw1_main
    PYTHONPATH=../src:. python bench_weighted_mean.py --clock cpu --rounds 4 --repeats 3 \\
        --against /tmp/tw1_main/src

Forward and backward of ``crossent.torch.cross_entropy`` of 4096 x 32000 float32 logits
(standard normal x 3) with class weights ``linspace(0.5, 2, 32000)`` (above 1: this
branch scales them into ``[1/2, 1)`` on the CPU, main did not) and, for the family,
``binary_cross_entropy_with_logits``' ``'mean'`` of 10^6 float32 logits with an
elementwise ``weight`` in ``[0.5, 2]`` (this branch scales it by a power of 2) and with a
``pos_weight`` of 2 (this branch forms the terms in float64 on the CPU). ``--against``
runs the trees interleaved, a fresh process each (``_against``). A small call too:
100 forward and backward passes of (8, 10) logits with weights up to 2.
"""

from __future__ import annotations

import argparse

import torch

import crossent.torch as ct
from _against import add_options, compare_if_asked, time_cases

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
add_options(parser)
parser.add_argument("--repeats", type=int, default=3)
args = parser.parse_args()
if not compare_if_asked(args, __file__):
    g = torch.Generator().manual_seed(0)
    z = (torch.randn(4096, 32000, generator=g) * 3).requires_grad_()
    y = torch.randint(0, 32000, (4096,), generator=g)
    w = torch.linspace(0.5, 2.0, 32000)
    x = torch.randn(1_000_000, generator=g).requires_grad_()
    t = torch.rand(1_000_000, generator=g)
    v = torch.rand(1_000_000, generator=g) * 1.5 + 0.5
    two = torch.tensor(2.0)

    zs = torch.randn(8, 10, generator=g).requires_grad_()
    ys = torch.randint(0, 10, (8,), generator=g)
    ws = torch.linspace(0.5, 2.0, 10)

    def ce() -> None:
        ct.cross_entropy(z, y, weight=w).backward()

    def ce_small() -> None:
        for _ in range(100):
            ct.cross_entropy(zs, ys, weight=ws).backward()

    def bce_weight() -> None:
        ct.binary_cross_entropy_with_logits(x, t, weight=v).backward()

    def bce_pos_weight() -> None:
        ct.binary_cross_entropy_with_logits(x, t, pos_weight=two).backward()

    time_cases(
        {
            "CE 4096x32000 weighted fwd+bwd": ce,
            "CE 8x10 weighted fwd+bwd x100": ce_small,
            "BCE 1e6 weight fwd+bwd": bce_weight,
            "BCE 1e6 pos_weight fwd+bwd": bce_pos_weight,
        },
        args,
    )
