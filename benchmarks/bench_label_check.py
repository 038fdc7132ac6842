"""The cost of always checking the labels' range (issue 13, labelsafe), tree against tree.

    python benchmarks/bench_label_check.py [--repeats 5] [--only NAME]
        [--against PATH/TO/OTHER/src ...] [--rounds 3] [--clock cpu]

``validate=False`` skips the value checks but, since labelsafe, never the labels'
range: the losses' fused kernels flag a label outside ``[0, C)`` in their row loop (no
pass of their own), the generic paths take one min/max pass over the labels, and the
calibration kernels hold the labels to ``[0, C)`` in their pass.  Timed here, with
``validate=False`` and with ``validate=True``, on valid labels (the cost every call
pays): ``softmax_cross_entropy`` and its gradient on float32 logits 10^6 x 10 and 4096 x
32000 (the fused kernels) and float64 10^6 x 10 (the generic path),
``negative_log_likelihood`` (mean, and per row: the ``summaries`` kernel, whose
labels get a min/max pass per block), ``calibration_error`` and
``EvaluationState.update`` on float32 probabilities 10^6 x 10.  Each case is called
``--repeats`` times after a warm-up call, interleaved; the minimum is kept.  With
``--against`` the script runs again under each other tree, the trees alternating round
by round (``_against.compare``); ``--clock cpu`` times the process's CPU time (all
threads), steadier on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import numpy as np

import crossent
from _against import add_options, clock, compare


def _cases() -> dict[str, Callable[[], object]]:
    rng = np.random.default_rng(0)
    small32 = rng.standard_normal((1_000_000, 10), dtype=np.float32)
    small64 = small32.astype(np.float64)
    labels = rng.integers(0, 10, size=1_000_000)
    wide = rng.standard_normal((4096, 32000), dtype=np.float32)
    wide_labels = rng.integers(0, 32000, size=4096)
    probs = np.exp(small64 - small64.max(axis=1, keepdims=True))
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    cases: dict[str, Callable[[], object]] = {}
    for validate in (False, True):
        tag = f"validate={validate}"
        for name, z, y in (
            ("1e6x10 f32", small32, labels),
            ("4096x32000 f32", wide, wide_labels),
            ("1e6x10 f64", small64, labels),
        ):
            cases[f"softmax_cross_entropy {name} {tag}"] = lambda z=z, y=y, v=validate: (
                crossent.softmax_cross_entropy(z, y, validate=v)
            )
            cases[f"softmax_cross_entropy_grad {name} {tag}"] = lambda z=z, y=y, v=validate: (
                crossent.softmax_cross_entropy_grad(z, y, validate=v)
            )
        cases[f"negative_log_likelihood 1e6x10 f32 {tag}"] = lambda v=validate: (
            crossent.negative_log_likelihood(probs, labels, validate=v)
        )
        cases[f"negative_log_likelihood none 1e6x10 f32 {tag}"] = lambda v=validate: (
            crossent.negative_log_likelihood(probs, labels, reduction="none", validate=v)
        )
        cases[f"calibration_error 1e6x10 f32 {tag}"] = lambda v=validate: (
            crossent.calibration_error(probs, labels, validate=v)
        )
        cases[f"EvaluationState.update 1e6x10 f32 {tag}"] = lambda v=validate: (
            crossent.EvaluationState(10).update(probs, labels, validate=v)
        )
    return cases


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default="", help="only cases whose name contains this")
    add_options(parser)
    args = parser.parse_args(argv)
    if args.against:
        own = ["--repeats", str(args.repeats), "--only", args.only, "--clock", args.clock]
        compare(__file__, own, args.against, args.rounds)
        return
    timer = clock(args)
    times: dict[str, list[float]] = {}
    cases = {k: f for k, f in _cases().items() if args.only in k}
    for call in cases.values():
        call()  # warm-up (compiles, first touch)
    for _ in range(args.repeats):  # interleaved: each repeat calls every case once
        for name, call in cases.items():
            start = timer()
            call()
            times.setdefault(name, []).append(timer() - start)
    if args.json:
        print(json.dumps(times))
        return
    for name, runs in times.items():
        print(f"{name:55s} {min(runs) * 1e3:9.2f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
