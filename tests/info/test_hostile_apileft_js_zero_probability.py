"""Hostile pass: JS of two sides of logits, nearly equal, where one side has a zero
probability (a ``-inf`` logit).

The log-partitions' difference :math:`c` is corrected by
:math:`\\operatorname{log1p}\\sum_i q_i(e^{\\delta_i} - 1)` only on rows whose every
log-ratio :math:`\\delta_i` was finite; a ``-inf`` logit of P left the row uncorrected,
and ``js_divergence([-inf, -5e-324, 5e-324], [-745.1, -5e-324, 8.7e-19],
p_form='logits', q_form='logits')`` was 4.73e-38 on main (afc1e53), twice the 2.365e-38
of mpmath (``exp(-8.7e-19)`` rounds to 1: Q's log-partition loses the 4.35e-19 that is
the whole log-ratio). Fails on main on every backend.
"""

from __future__ import annotations

from typing import Any

import mpmath
import numpy as np
import pytest

import crossent


def _js_oracle(x: list[float], y: list[float]) -> float:
    """JS(softmax(x), softmax(y)) at 80 digits, each float taken exactly."""
    with mpmath.workdps(80):

        def softmax(v: list[float]) -> list[Any]:
            finite = [mpmath.mpf(t) for t in v if np.isfinite(t)]
            top = max(finite)
            z = mpmath.fsum(mpmath.exp(t - top) for t in finite)
            return [mpmath.exp(mpmath.mpf(t) - top) / z if np.isfinite(t) else 0 for t in v]

        p, q = softmax(x), softmax(y)
        m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]

        def kl(a: list[Any]) -> Any:
            return mpmath.fsum(s * mpmath.log(s / t) for s, t in zip(a, m, strict=True) if s > 0)

        return float((kl(p) + kl(q)) / 2)


_P = [-np.inf, -5e-324, 5e-324]
_Q = [-745.1, -5e-324, 8.7e-19]


def test_js_of_logits_with_a_zero_probability_keeps_its_correction(backend: Any) -> None:
    """Main: 4.73e-38 (NumPy's fused kernel and the generic path alike)."""
    expected = _js_oracle(_P, _Q)
    assert expected == pytest.approx(2.3653125e-38, rel=1e-12)
    p, q = backend.asarray(np.array([_P, _Q])), backend.asarray(np.array([_Q, _P]))
    got = backend.to_numpy(crossent.js_divergence(p, q, p_form="logits", q_form="logits"))
    np.testing.assert_allclose(got, [expected, expected], rtol=1e-14)
