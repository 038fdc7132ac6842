"""The KL of float64 logits and log-probabilities: time.

Compare trees, interleaved, on a noisy machine (issue 13)::

    python benchmarks/bench_info_float64.py 1000 1000 --against /tmp/main_tree --rounds 3

(``--against``: other trees, or their ``src``; each tree runs in its own subprocess,
alternating round by round, see ``_against.py``.)

Per call (C-contiguous float64 inputs, ``validate=False``): the best and the median of
``--repeats`` timings, on random rows (P against Q of other rows) and on nearly equal
ones (Q = P plus noise of 1e-9: the exact sums take more passes there), and for float32
logits against log-probabilities; probabilities against logits and log-probabilities
(nearly equal: the same distribution in each form); the decomposition (entropy, cross-entropy and KL
together) of logits; the JS of logits (random), of logits against log-probabilities
(random and nearly equal) and of probabilities against logits (nearly equal). The
accuracy is the tests' business (``tests/info/test_issue13_kl_float64_exact.py``).
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


def _kl(p_form: str, q_form: str) -> Callable[[Any, Any], Any]:
    def call(a: Any, b: Any) -> Any:
        return crossent.kl_divergence(a, b, p_form=p_form, q_form=q_form, validate=False)

    return call


def _js(p_form: str, q_form: str) -> Callable[[Any, Any], Any]:
    def call(a: Any, b: Any) -> Any:
        return crossent.js_divergence(a, b, p_form=p_form, q_form=q_form, validate=False)

    return call


def _decomposition(a: Any, b: Any) -> Any:
    kw: dict[str, Any] = {"p_form": "logits", "q_form": "logits", "validate": False}
    return np.stack(crossent.cross_entropy_decomposition(a, b, **kw))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", type=int)
    parser.add_argument("classes", type=int)
    parser.add_argument("--repeats", type=int, default=5)
    add_options(parser)
    parser.add_argument("--only", default="", help="the cases whose name has this")
    args = parser.parse_args(argv)
    if args.against:
        own = [args.rows, args.classes, "--repeats", args.repeats, "--clock", args.clock]
        own += ["--only", args.only]
        compare(__file__, [str(v) for v in own], args.against, args.rounds)
        return
    rng = np.random.default_rng(0)
    z = rng.standard_normal((args.rows, args.classes)) * 3
    near = z + rng.standard_normal(z.shape) * 1e-9
    log_q = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    z32, log_q32 = z.astype(np.float32), log_q.astype(np.float32)
    probs = np.exp(log_q)
    probs32 = probs.astype(np.float32)
    cases: dict[str, tuple[Callable[[Any, Any], Any], Any, Any]] = {
        "kl(logits, logits) random": (_kl("logits", "logits"), z, z[::-1]),
        "kl(logits, logits) nearly equal": (_kl("logits", "logits"), z, near),
        "decomposition(logits, logits) random": (_decomposition, z, z[::-1]),
        "decomposition(logits, logits) nearly equal": (_decomposition, z, near),
        "kl(logits, log_probs) random": (_kl("logits", "log_probs"), z, log_q[::-1]),
        "kl(logits, log_probs) nearly equal": (_kl("logits", "log_probs"), near, log_q),
        "kl(log_probs, logits) random": (_kl("log_probs", "logits"), log_q, z[::-1]),
        "kl(log_probs, log_probs) random": (_kl("log_probs", "log_probs"), log_q, log_q[::-1]),
        "kl(log_probs, log_probs) nearly equal": (
            _kl("log_probs", "log_probs"),
            log_q,
            log_q + rng.standard_normal(z.shape) * 1e-9,
        ),
        "float32 kl(logits, log_probs) random": (
            _kl("logits", "log_probs"),
            z32,
            log_q32[::-1],
        ),
        "float32 kl(logits, log_probs) nearly equal": (_kl("logits", "log_probs"), z32, log_q32),
        "kl(probs, logits) random": (_kl("probs", "logits"), probs, z[::-1]),
        "kl(probs, logits) nearly equal": (_kl("probs", "logits"), probs, near),
        "kl(probs, log_probs) random": (_kl("probs", "log_probs"), probs, log_q[::-1]),
        "kl(probs, log_probs) nearly equal": (_kl("probs", "log_probs"), probs, log_q),
        "float32 kl(probs, logits) random": (_kl("probs", "logits"), probs32, z32[::-1]),
        "float32 kl(probs, logits) nearly equal": (_kl("probs", "logits"), probs32, z32),
        "js(logits, logits) random": (_js("logits", "logits"), z, z[::-1]),
        "js(logits, log_probs) random": (_js("logits", "log_probs"), z, log_q[::-1]),
        "js(logits, log_probs) nearly equal": (_js("logits", "log_probs"), near, log_q),
        "js(probs, logits) nearly equal": (_js("probs", "logits"), probs, near),
        "float32 js(logits, logits) random": (_js("logits", "logits"), z32, z32[::-1]),
    }
    if not args.json:
        print(crossent.__file__.split("/src/")[0])
    report: dict[str, list[float]] = {}
    timer = clock(args)
    for name, (call, a, b) in cases.items():
        if args.only not in name:
            continue
        call(a[:2], b[:2])  # compile (or load) outside the timings
        times = []
        for _ in range(args.repeats):
            start = timer()
            call(a, b)
            times.append(timer() - start)
        report[name] = times
        if not args.json:
            best, median = min(times), float(np.median(times))
            print(f"  {name:44s} best {best * 1e3:8.2f} ms, median {median * 1e3:8.2f} ms")
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
