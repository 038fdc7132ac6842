"""KL of probabilities, JS of logits and log-probabilities, CE of log-probabilities: time.

The measures issue 13's nearly-equal fixes touched, on random rows (the common case,
whose plain sums stand) and on nearly equal ones (the careful forms), compared across
trees, interleaved, on a noisy machine::

    python benchmarks/bench_nearly_equal.py 1000 1000 --against /work/main --rounds 3

Per call (C-contiguous inputs, ``validate=False``): the best and the median of
``--repeats`` timings; NumPy float64 and float32 (the fused kernel) and PyTorch float64
(the generic path). The accuracy is the tests' business
(``tests/info/test_issue13_nearly_equal_exact.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

import crossent
from _against import add_options, clock, compare


def _measure(function: Callable[..., Any], form: str) -> Callable[[Any, Any], Any]:
    def call(a: Any, b: Any) -> Any:
        return function(a, b, p_form=form, q_form=form, validate=False)

    return call


def _timed(call: Callable[[Any, Any], Any], a: Any, b: Any, args: Any) -> list[float]:
    """``args.repeats`` timings of ``call(a, b)`` by the clock ``args`` names, after one
    call on two rows (the compile, or the cache's load)."""
    call(a[:2], b[:2])
    timer = clock(args)
    times = []
    for _ in range(args.repeats):
        start = timer()
        call(a, b)
        times.append(timer() - start)
    return times


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for size in ("rows", "classes"):
        parser.add_argument(size, type=int)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default="", help="the cases whose name has this")
    add_options(parser)
    args = parser.parse_args(argv)
    if args.against:
        own = [f"{args.rows}", f"{args.classes}", f"--repeats={args.repeats}"]
        own += [f"--clock={args.clock}", f"--only={args.only}"]
        compare(__file__, own, args.against, args.rounds)
        return
    import torch

    rng = np.random.default_rng(0)
    z = rng.standard_normal((args.rows, args.classes)) * 3
    near = z + rng.standard_normal(z.shape) * 1e-9
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    log_near = near - np.log(np.exp(near).sum(axis=1, keepdims=True))
    p, p_near = np.exp(log_p), np.exp(log_near)
    kl, js, ce = crossent.kl_divergence, crossent.js_divergence, crossent.cross_entropy
    pairs = {"random": (p, p[::-1], z, z[::-1]), "nearly equal": (p, p_near, z, near)}
    cases: dict[str, tuple[Callable[[Any, Any], Any], Any, Any]] = {}
    for kind, (a, b, x, y) in pairs.items():
        cases[f"kl(probs, probs) {kind}"] = (_measure(kl, "probs"), a, b)
        cases[f"float32 kl(probs, probs) {kind}"] = (
            _measure(kl, "probs"),
            a.astype(np.float32),
            b.astype(np.float32),
        )
        cases[f"js(logits, logits) {kind}"] = (_measure(js, "logits"), x, y)
        cases[f"float32 js(logits, logits) {kind}"] = (
            _measure(js, "logits"),
            x.astype(np.float32),
            y.astype(np.float32),
        )
        cases[f"js(log_probs, log_probs) {kind}"] = (
            _measure(js, "log_probs"),
            np.log(a),
            np.log(b),
        )
        cases[f"ce(log_probs, log_probs) {kind}"] = (
            _measure(ce, "log_probs"),
            np.log(a),
            np.log(b),
        )
        cases[f"torch kl(probs, probs) {kind}"] = (
            _measure(kl, "probs"),
            torch.from_numpy(a.copy()),
            torch.from_numpy(b.copy()),
        )
        cases[f"torch js(logits, logits) {kind}"] = (
            _measure(js, "logits"),
            torch.from_numpy(x.copy()),
            torch.from_numpy(y.copy()),
        )
    report = {
        name: _timed(call, a, b, args) for name, (call, a, b) in cases.items() if args.only in name
    }
    if args.json:
        print(json.dumps(report))
        return
    print(crossent.__file__.split("/src/")[0])
    for name, times in report.items():
        best, median = min(times) * 1e3, float(np.median(times)) * 1e3
        print(f"  {name:44s} best {best:8.2f} ms, median {median:8.2f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
