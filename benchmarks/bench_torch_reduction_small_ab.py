"""Small ``crossent.torch`` calls through ``torch/_reduction.py`` and ``torch/_binary.py``
(the host-read predicate ``reads_on_host``, the weights' power-of-2 scaling), for an
A/B of a change there (issue 13, branch tidy1).

    python benchmarks/bench_torch_reduction_small_ab.py [--calls 300] [--repeats 7]
        [--clock cpu] [--against TREE ...] [--rounds 3]

Float32 (8, 10) logits, one torch thread: ``cross_entropy`` ``'mean'`` without weights,
with weights in [0.5, 1.5) and with weights in [2, 6) (scaled by a power of 2), its
forward + backward, and ``binary_cross_entropy_with_logits`` ``'mean'`` with ``weight``
or a ``pos_weight`` above 1. Each timed run is ``--calls`` calls (the cases
alternating, ``_against.time_cases``); ``--against`` runs the same in a fresh process
per tree, the trees alternating (the trees register the same custom ops, so they cannot
share a process).
"""

from __future__ import annotations

import argparse

import torch

import crossent.torch as ct
from _against import add_options, compare_if_asked, time_cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=7)
    add_options(parser)
    args = parser.parse_args()
    if compare_if_asked(args, __file__):
        return
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 10, generator=g)
    y = torch.randint(0, 10, (8,), generator=g)
    w = torch.rand(10, generator=g) + 0.5
    xr = x.clone().requires_grad_()
    t = torch.rand(8, 10, generator=g)
    calls = {
        "ce mean": lambda: ct.cross_entropy(x, y),
        "ce mean weight ~1": lambda: ct.cross_entropy(x, y, weight=w),
        "ce mean weight >1": lambda: ct.cross_entropy(x, y, weight=4 * w),
        "ce mean grad": lambda: ct.cross_entropy(xr, y).backward(),
        "bce mean weight": lambda: ct.binary_cross_entropy_with_logits(x, t, weight=w),
        "bce mean pos_weight >1": lambda: ct.binary_cross_entropy_with_logits(
            x, t, pos_weight=4 * w
        ),
    }

    def repeated(fn: object) -> object:
        return lambda: [fn() for _ in range(args.calls)]  # type: ignore[operator]

    time_cases({name: repeated(fn) for name, fn in calls.items()}, args)


if __name__ == "__main__":
    main()
