"""``crossent.torch.distillation_loss`` under ``torch.compile``: ordinary rows, per call.

    PYTHONPATH=src python benchmarks/bench_torch_distill_compile.py [--against OTHER_TREE]

Ordinary float32 logits (standard normal x 3, nothing near or far), T = 2, ``'mean'``,
forward + backward of the student (the teacher requires no gradient), for
``torch.compile(fn)`` (Inductor, default mode) and the same function eagerly: 8 x 10
(200 calls per timing), 256 x 1000 (20 calls) and 4096 x 32000 (1 call). One torch
thread (Inductor's kernels too); thread CPU seconds of each timing, after a warm-up
call (the compilation). ``--against`` runs the script under each tree in turn
(``_against.compare``: this tree first), so that a tree whose compiled call breaks its
graph (main: 21 graphs) can be timed beside this one.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from collections.abc import Callable

import torch

import crossent.torch as ct
from _against import add_options, compare

SHAPES = {"8 x 10": (8, 10, 200), "256 x 1000": (256, 1000, 20), "4096 x 32000": (4096, 32000, 1)}


def loss_fn(z: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return ct.distillation_loss(z, v, temperature=2.0, reduction="mean")


def logits(n: int, c: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A pair of ordinary ``n x c`` float32 logits (student, teacher)."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, c, generator=g) * 3, torch.randn(n, c, generator=g) * 3


def calls_of(
    loss: Callable[..., torch.Tensor], z: torch.Tensor, v: torch.Tensor, calls: int
) -> None:
    """``calls`` forward + backward calls of ``loss`` (a fresh student leaf each)."""
    for _ in range(calls):
        leaf = z.clone().requires_grad_()
        loss(leaf, v).backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(parser)
    parser.add_argument("--repeats", type=int, default=5, help="timings per case")
    args = parser.parse_args()
    if args.against:
        argv = ["--repeats", str(args.repeats)]
        compare(__file__, argv, args.against, args.rounds)
        return
    warnings.simplefilter("ignore")  # (Inductor's deprecation warnings)
    torch.set_num_threads(1)
    compiled = torch.compile(loss_fn)
    times: dict[str, list[float]] = {}
    for name, shape in SHAPES.items():
        z, v = logits(shape[0], shape[1])
        for kind, fn in (("compiled", compiled), ("eager", loss_fn)):
            calls_of(fn, z, v, shape[2])  # (the compilation)
            case = f"{name} {kind}"
            times[case] = []
            for _ in range(args.repeats if shape[0] < 4096 else 2):
                start = time.thread_time()
                calls_of(fn, z, v, shape[2])
                times[case].append(time.thread_time() - start)
    if args.json:
        print(json.dumps(times))
        return
    print(f"float32, T=2, 'mean', forward + backward, 1 thread; load {os.getloadavg()}")
    for case, seconds in times.items():
        print(f"{case:28s} best {min(seconds) * 1e3:10.2f} ms")


if __name__ == "__main__":
    main()
