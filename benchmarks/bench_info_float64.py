"""The KL of float64 logits and log-probabilities: time, one tree per run.

Run the same script under two trees, interleaved, on a noisy machine (issue 13)::

    for i in 1 2 3; do for tree in /tmp/main_tree $PWD; do
        PYTHONPATH=$tree/src python benchmarks/bench_info_float64.py 4000 1000
    done; done

Per call (C-contiguous float64 inputs, ``validate=False``): the best and the median of
``--repeats`` timings, on random rows (P against Q of other rows) and on nearly equal
ones (Q = P plus noise of 1e-9: the exact sums take more passes there), and for float32
logits against log-probabilities. The accuracy is the tests' business
(``tests/info/test_issue13_kl_float64_exact.py``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import crossent


def _kl(p_form: str, q_form: str) -> Callable[[Any, Any], Any]:
    def call(a: Any, b: Any) -> Any:
        return crossent.kl_divergence(a, b, p_form=p_form, q_form=q_form, validate=False)

    return call


def _decomposition(a: Any, b: Any) -> Any:
    kw: dict[str, Any] = {"p_form": "logits", "q_form": "logits", "validate": False}
    return np.stack(crossent.cross_entropy_decomposition(a, b, **kw))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", type=int)
    parser.add_argument("classes", type=int)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    z = rng.standard_normal((args.rows, args.classes)) * 3
    near = z + rng.standard_normal(z.shape) * 1e-9
    log_q = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    z32, log_q32 = z.astype(np.float32), log_q.astype(np.float32)
    cases: dict[str, tuple[Callable[[Any, Any], Any], Any, Any]] = {
        "kl(logits, logits) random": (_kl("logits", "logits"), z, z[::-1]),
        "kl(logits, logits) nearly equal": (_kl("logits", "logits"), z, near),
        "decomposition(logits, logits) random": (_decomposition, z, z[::-1]),
        "kl(logits, log_probs) random": (_kl("logits", "log_probs"), z, log_q[::-1]),
        "kl(logits, log_probs) nearly equal": (_kl("logits", "log_probs"), near, log_q),
        "kl(log_probs, logits) random": (_kl("log_probs", "logits"), log_q, z[::-1]),
        "float32 kl(logits, log_probs) random": (
            _kl("logits", "log_probs"),
            z32,
            log_q32[::-1],
        ),
        "float32 kl(logits, log_probs) nearly equal": (_kl("logits", "log_probs"), z32, log_q32),
    }
    print(crossent.__file__.split("/src/")[0])
    for name, (call, a, b) in cases.items():
        call(a[:2], b[:2])  # compile (or load) outside the timings
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            call(a, b)
            times.append(time.perf_counter() - start)
        best, median = min(times), float(np.median(times))
        print(f"  {name:44s} best {best * 1e3:8.2f} ms, median {median * 1e3:8.2f} ms")


if __name__ == "__main__":
    main()
