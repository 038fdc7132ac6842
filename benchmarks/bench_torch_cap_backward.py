"""What recomputing ``tanh`` costs the soft-capped probability-target op's backward.

    PYTHONPATH=src python benchmarks/bench_torch_cap_backward.py [--rows 512] [--repeats 5]

Issue 13 follow-up (item 3): the backward of ``crossent::softmax_ce_probs_v3`` recomputes
:math:`z' = s\\tanh(z/s)` from the logits. Reusing anything from the forward instead means
saving a tensor of the logits' size (none is saved now: a float32 :math:`z'` would add
125 MiB at 1024 x 32000 and cost up to some 30 float32 ulps of :math:`p`). This bounds
the gain: ``target_backward`` as is, against the same with ``tanh`` replaced by one
multiply (the cheapest pass that reading a saved tensor could be), and without a cap;
interleaved in one process, C = 32000 float32, medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from crossent.torch import _backend, _launch

C = 32000


def _without_tanh(
    z: torch.Tensor, opts: _backend.Options, *, overwrite: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``_launch._capped_logits`` with ``tanh`` replaced by a multiply (wrong values)."""
    assert opts.soft_cap is not None
    scaled = z.div_(opts.soft_cap)
    return scaled.mul(opts.soft_cap), scaled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    n = args.rows
    g = torch.Generator().manual_seed(0)
    z = torch.randn(n, C, generator=g) * 3
    t = torch.softmax(torch.randn(n, C, generator=g) * 3, -1)
    capped = _backend.options(label_smoothing=0.0, z_loss=0.0, temperature=1.0, soft_cap=30.0)
    plain = _backend.options(label_smoothing=0.0, z_loss=0.0, temperature=1.0, soft_cap=None)
    _, lse = _launch.target_forward(z, t, None, capped)
    upstream = torch.full((n,), 1.0 / n)
    real = _launch._capped_logits
    variants: dict[str, tuple[Callable[..., Any], _backend.Options]] = {
        "as is": (real, capped),
        "tanh -> multiply": (_without_tanh, capped),
        "no soft_cap": (real, plain),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for rep in range(args.repeats + 1):
            for name, (capping, opts) in variants.items():
                _launch._capped_logits = capping  # type: ignore[assignment]
                start = time.perf_counter()
                _launch.target_backward(upstream, z, t, None, lse, opts)
                if rep:  # the first round warms up
                    times[name].append(time.perf_counter() - start)
    finally:
        _launch._capped_logits = real  # type: ignore[assignment]
    print(f"target_backward, N={n} C={C} float32, soft_cap 30; load {os.getloadavg()}")
    print("| backward | median s | all s |")
    for name, runs in times.items():
        listed = " ".join(f"{s:.3f}" for s in runs)
        print(f"| {name} | {statistics.median(runs):.3f} | {listed} |")


if __name__ == "__main__":
    main()
