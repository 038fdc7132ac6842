"""Per-call CPU time of ``crossent.torch``'s fused distillation CPU ops on a small call
(issue 13, branch nearrows2).

    PYTHONPATH=src python benchmarks/bench_distill_cpu_op_call.py

``torch.ops.crossent.distillation_cpu_rows_v3`` (the forward op) and
``distillation_cpu_rows_backward_v2`` (the backward op, upstream ``1/8`` float32) called
through the dispatcher on 8 x 10 float32 logits (standard normal x 3, seed 0), T = 2,
forward and reverse: microseconds of thread CPU time per call, the best of 7 timings of
2000 calls, one torch thread. What every eager and ``torch.compile``d call of
``crossent.torch.distillation_loss`` on such logits pays for the two ops (the compiled
graph calls them as they are). Run it under each tree (``PYTHONPATH``) to compare.
"""

from __future__ import annotations

import time
import warnings

import torch

import crossent.torch  # noqa: F401 - registers the ops

warnings.filterwarnings("ignore")


def per_call(function, calls: int = 2000, timings: int = 7) -> float:
    """Microseconds of thread CPU time per call, the best of ``timings``."""
    function()
    best = float("inf")
    for _ in range(timings):
        start = time.thread_time()
        for _ in range(calls):
            function()
        best = min(best, (time.thread_time() - start) / calls * 1e6)
    return best


def main() -> None:
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(8, 10, generator=generator) * 3
    v = torch.randn(8, 10, generator=generator) * 3
    forward_op = torch.ops.crossent.distillation_cpu_rows_v3.default
    backward_op = torch.ops.crossent.distillation_cpu_rows_backward_v2.default
    upstream = torch.full((8,), 1 / 8, dtype=torch.float32)
    for direction in ("forward", "reverse"):
        _, stats, kind, _ = forward_op(z, v, 2.0, 0.0, "logits", direction)
        forward = per_call(lambda d=direction: forward_op(z, v, 2.0, 0.0, "logits", d))
        backward = per_call(
            lambda d=direction, s=stats, k=kind: backward_op(upstream, z, v, s, k, 2.0, "logits", d)
        )
        print(f"{direction}: forward op {forward:.1f} us, backward op {backward:.1f} us")


if __name__ == "__main__":
    main()
