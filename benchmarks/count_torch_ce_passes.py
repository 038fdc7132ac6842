"""Count the aten operations and full N x V passes of crossent.torch.cross_entropy with
class ids, the accelerator path (``crossent.torch._accelerator``, what CUDA tensors take)
against the generic array-API path that CUDA tensors took before, both run on the CPU.

A "pass" is an aten operation whose largest input is an N x V-sized block (at least a
64th of the logits), weighted by that block's share of the logits: one ``exp_`` over all
rows counts 1, over half of them 0.5 (an in-place one reads and writes it). Gathers and
scatters of one entry a row, views and empty allocations are not passes; the last are
not counted as operations either. The accelerator path runs with its exponentials in
the work dtype, as on an accelerator (on the CPU they are float64); the generic path
as on the CPU, with its data checks (skipped off the CPU). Counts, not times.

    cd benchmarks; PYTHONPATH=../src python count_torch_ce_passes.py [--rows 4096 --classes 32000]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

import crossent.torch as ct
from crossent.torch import _accelerator, _launch, _linear

_FREE = {
    "aten::empty",
    "aten::empty_like",
    "aten::empty_strided",
    "aten::slice",
    "aten::select",
    "aten::as_strided",
    "aten::view",
    "aten::reshape",
    "aten::_reshape_alias",
    "aten::unsqueeze",
    "aten::squeeze",
    "aten::expand",
    "aten::t",
    "aten::transpose",
    "aten::detach",
    "aten::alias",
    "aten::lift_fresh",
    "aten::resolve_conj",
    "aten::resolve_neg",
    "aten::result_type",
}


@contextmanager
def path(name: str) -> Iterator[None]:
    """Route CPU tensors through ``name``: "accelerator" or "generic"."""
    saved = (_accelerator.ON_CPU, _launch.uses_fused_kernels, _linear._wide)
    _accelerator.ON_CPU = name == "accelerator"
    if name == "generic":
        _launch.uses_fused_kernels = lambda z, opts: False  # type: ignore[assignment]
    else:  # exponentials in the work dtype, as on an accelerator (float64 on the CPU)
        _linear._wide = lambda z: z.dtype  # type: ignore[assignment]
    try:
        yield
    finally:
        _accelerator.ON_CPU, _launch.uses_fused_kernels, _linear._wide = saved  # type: ignore[assignment]


def _numel(shape: Any) -> int:
    if not isinstance(shape, list) or not all(isinstance(d, int) for d in shape):
        return 0
    n = 1
    for d in shape:
        n *= d
    return n


def count(events: Any, total: int) -> tuple[int, float, Counter[str]]:
    """Top-level aten ops (not nested in another aten op), their N x V passes."""
    ops, passes, names = 0, 0.0, Counter[str]()
    for e in events:
        if not e.name.startswith("aten::") or e.name in _FREE:
            continue
        parent = e.cpu_parent
        nested = False
        while parent is not None:
            if parent.name.startswith("aten::"):
                nested = True
                break
            parent = parent.cpu_parent
        if nested:
            continue
        ops += 1
        big = max((_numel(s) for s in e.input_shapes), default=0)
        if big * 64 >= total and "gather" not in e.name and "scatter" not in e.name:
            passes += big / total
            names[e.name] += 1
    return ops, passes, names


def measure(name: str, rows: int, classes: int, **options: Any) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(0)
    z = (3 * torch.randn(rows, classes, generator=gen)).requires_grad_()
    y = torch.randint(0, classes, (rows,), generator=gen)
    out: dict[str, Any] = {}
    with path(name):
        loss = ct.cross_entropy(z, y, **options)  # warm-up (first-call work not counted)
        loss.backward()
        z.grad = None
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            loss = ct.cross_entropy(z, y, **options)
        out["forward"] = count(prof.events(), rows * classes)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            loss.backward()
        out["backward"] = count(prof.events(), rows * classes)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--classes", type=int, default=32000)
    parser.add_argument("--paths", nargs="+", default=["generic", "accelerator"])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("defaults (ignore_index=-100)", {}),
        ("label_smoothing=0.1, z_loss=1e-4", {"label_smoothing": 0.1, "z_loss": 1e-4}),
    ]
    print(f"{args.rows} x {args.classes} float32, CPU, torch {torch.__version__}")
    for label, options in cases:
        for name in args.paths:
            result = measure(name, args.rows, args.classes, **options)
            for stage in ("forward", "backward"):
                ops, passes, names = result[stage]
                top = ", ".join(f"{k.removeprefix('aten::')} {v}" for k, v in names.most_common())
                print(f"{label:36s} {name:11s} {stage:8s} aten ops {ops:5d}  passes {passes:5.1f}")
                print(f"    N x V ops: {top}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
