"""Graphs ``torch.compile`` builds when a loss's float option takes a new value each call.

A smoothing or temperature schedule inside a compiled step calls the loss with a new
Python float each time; a graph guarded on the value is compiled again per value until
Dynamo's recompile limit (8) sends the step back to eager. Counts the frames Dynamo
compiles (``CompileCounterWithBackend``, backend ``aot_eager``) for ``--values``
distinct values, for crossent.torch's losses and ``torch.nn.functional.cross_entropy``
(the anchor), the CPU seconds per step of those calls (compiles included: the cost of
a schedule's first ``--values`` steps) and checks each compiled value against the
eager call's bits.

Run::

    PYTHONPATH=src python benchmarks/bench_torch_compile_option_values.py --values 10
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F  # noqa: N812
from torch._dynamo.testing import CompileCounterWithBackend

import crossent.torch as ct


def _cases() -> dict[str, Callable[[float], torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, generator=gen)
    y = torch.tensor([0, 4, 2, 1, 1, 3])
    p = torch.softmax(torch.randn(6, 5, generator=gen), 1)
    h = torch.randn(6, 4, generator=gen)
    w = torch.randn(5, 4, generator=gen)
    xb = torch.randn(6, 5, generator=gen)
    tb = torch.rand(6, 5, generator=gen)
    return {
        "F.cross_entropy label_smoothing": lambda v: F.cross_entropy(x, y, label_smoothing=v),
        "F.cross_entropy(x / T) (temperature idiom)": lambda v: F.cross_entropy(x / (1 + v), y),
        "cross_entropy class ids label_smoothing": lambda v: ct.cross_entropy(
            x, y, label_smoothing=v
        ),
        "cross_entropy class ids temperature": lambda v: ct.cross_entropy(x, y, temperature=1 + v),
        "cross_entropy class ids z_loss": lambda v: ct.cross_entropy(x, y, z_loss=v),
        "cross_entropy class ids soft_cap": lambda v: ct.cross_entropy(x, y, soft_cap=1 + v),
        "CrossEntropyLoss(label_smoothing=v) per call": lambda v: ct.CrossEntropyLoss(
            label_smoothing=v
        )(x, y),
        "cross_entropy probabilities label_smoothing": lambda v: ct.cross_entropy(
            x, p, label_smoothing=v
        ),
        "cross_entropy probabilities temperature": lambda v: ct.cross_entropy(
            x, p, temperature=1 + v
        ),
        "linear_cross_entropy label_smoothing": lambda v: ct.linear_cross_entropy(
            h, w, y, label_smoothing=v
        ),
        "linear_cross_entropy temperature, 'none'": lambda v: ct.linear_cross_entropy(
            h, w, y, temperature=1 + v, reduction="none"
        ),
        "distillation_loss temperature": lambda v: ct.distillation_loss(x, xb, temperature=1 + v),
        "distillation_loss temperature, teacher probs": lambda v: ct.distillation_loss(
            x, p, temperature=1 + v, teacher_form="probs"
        ),
        "DistillationLoss(temperature=v) per call": lambda v: ct.DistillationLoss(
            temperature=1 + v
        )(x, xb),
        "binary_cross_entropy_with_logits label_smoothing": lambda v: (
            ct.binary_cross_entropy_with_logits(xb, tb, label_smoothing=v)
        ),
        "softmax_focal_loss gamma": lambda v: ct.softmax_focal_loss(x, y, gamma=1 + v),
        "sigmoid_focal_loss gamma": lambda v: ct.sigmoid_focal_loss(xb, tb, gamma=1 + v),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=10, help="distinct values (default 10)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    values = [0.01 * (i + 1) for i in range(args.values)]
    print(
        f"torch {torch.__version__}; {args.values} values; recompile limit "
        f"{torch._dynamo.config.recompile_limit}"
    )
    for name, loss in _cases().items():
        torch._dynamo.reset()
        counter = CompileCounterWithBackend("aot_eager")
        step = torch.compile(loss, backend=counter)
        start = time.process_time()
        got = [step(v) for v in values]
        per_step = (time.process_time() - start) / len(values)
        same = all(torch.equal(g, loss(v)) for g, v in zip(got, values, strict=True))
        print(
            f"{name:52s} frames {counter.frame_count:2d}  CPU s/step {per_step:6.3f}  "
            f"compiled == eager: {same}"
        )


if __name__ == "__main__":
    main()
