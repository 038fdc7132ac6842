"""Independent references: the measures at 50 significant digits with mpmath.

Each float input is converted to an mpf exactly, so these are the true values of the
measures of the given floating-point numbers (not of their decimal intent).
"""

from __future__ import annotations

from collections.abc import Sequence

import mpmath

mpmath.mp.dps = 50
INF = mpmath.inf


def _mp(values: Sequence[float]) -> list[mpmath.mpf]:
    return [mpmath.mpf(float(v)) for v in values]


def entropy(p: Sequence[float]) -> float:
    return float(-mpmath.fsum(x * mpmath.log(x) for x in _mp(p) if x > 0))


def cross_entropy(p: Sequence[float], q: Sequence[float]) -> float:
    total = mpmath.mpf(0)
    for x, y in zip(_mp(p), _mp(q), strict=True):
        if x == 0:
            continue
        if y == 0:
            return float("inf")
        total -= x * mpmath.log(y)
    return float(total)


def kl_divergence(p: Sequence[float], q: Sequence[float]) -> float:
    total = mpmath.mpf(0)
    for x, y in zip(_mp(p), _mp(q), strict=True):
        if x == 0:
            continue
        if y == 0:
            return float("inf")
        total += x * mpmath.log(x / y)
    return float(total)


def js_divergence(p: Sequence[float], q: Sequence[float]) -> float:
    total = mpmath.mpf(0)
    for x, y in zip(_mp(p), _mp(q), strict=True):
        m = (x + y) / 2
        if x > 0:
            total += x * mpmath.log(x / m) / 2
        if y > 0:
            total += y * mpmath.log(y / m) / 2
    return float(total)


def binary_cross_entropy(p: float, q: float) -> float:
    # 1 - q is formed exactly at any precision: mpmath.log1p(-q), not log(1 - q), since
    # 1 - 5e-207 is 1 at 50 digits.
    x, y = mpmath.mpf(float(p)), mpmath.mpf(float(q))
    total = mpmath.mpf(0)
    if x > 0:
        if y == 0:
            return float("inf")
        total -= x * mpmath.log(y)
    if x < 1:
        if y == 1:
            return float("inf")
        total -= (1 - x) * mpmath.log1p(-y)
    return float(total)


def softmax(logits: Sequence[float]) -> list[float]:
    z = _mp(logits)
    m = max(z)
    e = [mpmath.exp(v - m) for v in z]
    s = mpmath.fsum(e)
    return [float(v / s) for v in e]


def _log_softmax_mp(logits: Sequence[float]) -> list[mpmath.mpf]:
    z = _mp(logits)
    lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in z))
    return [v - lse for v in z]


def entropy_of_logits(logits: Sequence[float]) -> float:
    """H(softmax(z)) without rounding the probabilities to floats on the way."""
    log_p = _log_softmax_mp(logits)
    return float(-mpmath.fsum(mpmath.exp(lp) * lp for lp in log_p))


def cross_entropy_with_logits(p: Sequence[float], logits: Sequence[float]) -> float:
    """H(P, softmax(z)) in mpmath throughout."""
    log_q = _log_softmax_mp(logits)
    return float(-mpmath.fsum(x * lq for x, lq in zip(_mp(p), log_q, strict=True) if x > 0))
