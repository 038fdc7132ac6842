"""Ulps of ``perplexity``'s fused kernel from the mpmath truth, this tree and another.

    cd benchmarks
    TMPDIR=$(mktemp -d) PYTHONPATH=. python check_perplexity_ulps.py --before /tmp/old/src

Not a timing: the accuracy beside ``bench_perplexity_ab.py``'s times (issue 13, branch
ddone1: the kernel's ``exp`` of logits and log-probabilities by a table instead of
``exp`` and its residual by an atanh series). Both trees in one process
(``_against.load_tree``), NumPy float64 rows (the fused kernel): logits (normal, scale
3, as the benchmark's), their log-probabilities, Dirichlet probabilities against the
logits, both sides logits, Student-t (3) logits of 32000 classes, scale 3 (most entries
below the kernel's cut), equal logits, and logits of scale 0.01 and 30. Prints per case
and tree the largest error in ulps of the result and the share of rows above half an
ulp (not correctly rounded), against ``exp`` of the 60-digit entropy (mpmath).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import mpmath
import numpy as np

from _against import load_tree

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--before", required=True, help="the tree (or src) to compare with")
parser.add_argument("--rows", type=int, default=40)
args = parser.parse_args()


def _log_side(v: np.ndarray, form: str) -> list[Any]:
    """The logarithms of a row's probabilities in mpmath (60 digits)."""
    mp = [mpmath.mpf(float(x)) for x in v]
    if form == "probs":
        return [mpmath.log(x) if x > 0 else -mpmath.inf for x in mp]
    if form == "log_probs":
        return mp
    top = max(mp)
    log_s = mpmath.log(mpmath.fsum(mpmath.exp(x - top) for x in mp))
    return [(x - top) - log_s for x in mp]


def truth(p: np.ndarray, q: np.ndarray | None, p_form: str, q_form: str) -> Any:
    """:math:`e^{H(P, Q)}` (Q = P where None) in 60 digits."""
    with mpmath.workdps(60):
        log_p = _log_side(p, p_form)
        log_q = log_p if q is None else _log_side(q, q_form)
        return mpmath.exp(
            -mpmath.fsum(mpmath.exp(a) * b for a, b in zip(log_p, log_q, strict=True))
        )


def ulps(got: float, exact: Any) -> float:
    with mpmath.workdps(60):
        return float(abs(mpmath.mpf(got) - exact) / mpmath.mpf(np.spacing(float(exact))))


rng = np.random.default_rng(1)
r = args.rows
logits = rng.normal(size=(r, 1000)) * 3.0
log_probs = logits - np.log(np.sum(np.exp(logits), axis=-1, keepdims=True))
probs = rng.dirichlet(np.ones(1000), size=r)
lm = rng.standard_t(3, size=(max(1, r // 10), 32000)) * 3.0
cases: dict[str, tuple[np.ndarray, np.ndarray | None, str, str]] = {
    "logits 1000": (logits, None, "logits", "probs"),
    "log_probs 1000": (log_probs, None, "log_probs", "probs"),
    "probs vs q logits": (probs, logits, "probs", "logits"),
    "logits vs q logits": (logits[::-1].copy(), logits, "logits", "logits"),
    "log_probs vs q logits": (log_probs, logits[::-1].copy(), "log_probs", "logits"),
    "t3 logits 32000": (lm, None, "logits", "probs"),
    "equal logits 1000": (np.zeros((2, 1000)), None, "logits", "probs"),
    "logits scale 0.01": (logits * (0.01 / 3.0), None, "logits", "probs"),
    "logits scale 30": (logits * 10.0, None, "logits", "probs"),
}
trees = {
    "now": load_tree(os.path.join(os.path.dirname(__file__), "..", "src"), "crossent_ulps_now"),
    "before": load_tree(args.before, "crossent_ulps_before"),
}
print(f"{'case':24s}" + "".join(f" {t + ' max':>12s} {t + ' >0.5':>10s}" for t in trees))
for name, (p, q, p_form, q_form) in cases.items():
    exact = [truth(p[i], None if q is None else q[i], p_form, q_form) for i in range(len(p))]
    line = f"{name:24s}"
    for pkg in trees.values():
        if q is None:
            got = pkg.perplexity(p, p_form=p_form)
        else:
            got = pkg.perplexity(p, q, p_form=p_form, q_form=q_form)
        errors = np.array([ulps(float(g), e) for g, e in zip(got, exact, strict=True)])
        line += f" {errors.max():12.4f} {np.mean(errors > 0.5):10.3f}"
    print(line, flush=True)
