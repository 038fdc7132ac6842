"""Float32 label-smoothed gradient at a tiny temperature (farautograd).

``softmax_cross_entropy_grad`` of float32 logits ``[[1, 2, 3]]`` (label 2) with label
smoothing at :math:`T = 10^{-30}` gave ``inf`` on main (the smoothed kernel's correction
:math:`e^{\\mathrm{LSE} - s}` of a log-sum-exp of 3e30, whose ulp is 1e14, overflows),
and ``[[3e38, -3e38, 0]]`` (label 0) NaN; float64 gave the truth
:math:`((p - \\tilde t)/T)`, :math:`\\pm 3.3\\cdot 10^{28}` and :math:`6.7\\cdot 10^{28}`,
within float32's range. Oracle: the definition in mpmath at 80 digits, rounded once to
float32. Every case fails on main.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import crossent


def _gradient(z, label: int, eps: float, temperature: float, weight=None) -> list[float]:
    r""":math:`(A\,p - v)/T` with :math:`v = (1-\varepsilon) w_y e_y + \tfrac{\varepsilon}{C}
    w`, :math:`A = \sum_c v_c` and :math:`p = \operatorname{softmax}(z/T)`, each entry
    of the row's loss :math:`\sum_c v_c(\operatorname{LSE}(z/T) - z_c/T)` (mpmath)."""
    with mpmath.workdps(80):
        t = mpmath.mpf(temperature)
        x = [mpmath.mpf(float(c)) / t for c in z]
        top = max(x)
        total = mpmath.fsum(mpmath.exp(c - top) for c in x)
        p = [mpmath.exp(c - top) / total for c in x]
        classes = len(x)
        w = [mpmath.mpf(1)] * classes if weight is None else [mpmath.mpf(float(v)) for v in weight]
        eps_ = mpmath.mpf(eps)
        v = [
            eps_ / classes * w[c] + ((1 - eps_) * w[label] if c == label else 0)
            for c in range(classes)
        ]
        a = mpmath.fsum(v)
        return [float((a * p[c] - v[c]) / t) for c in range(classes)]


CASES = [
    ([1.0, 2.0, 3.0], 2, None),
    ([3e38, -3e38, 0.0], 0, None),
    ([3e38, -3e38, 0.0], 1, None),
    ([1.0, 2.0, 3.0], 0, (1.0, 2.0, 3.0)),
]


@pytest.mark.parametrize("rows", [1, 3000], ids=["one-row", "3000-rows"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_float32_smoothed_gradient_at_a_tiny_temperature(case: int, rows: int) -> None:
    z, label, weight = CASES[case]
    logits = np.tile(np.array([z], dtype=np.float32), (rows, 1))
    kwargs = {} if weight is None else {"weight": np.array(weight, dtype=np.float32)}
    got = crossent.softmax_cross_entropy_grad(
        logits,
        np.full(rows, label),
        label_smoothing=0.1,
        temperature=1e-30,
        reduction="none",
        **kwargs,
    )
    truth = _gradient(np.float32(z).astype(np.float64), label, 0.1, 1e-30, weight)
    assert max(abs(v) for v in truth) < 3.4e38  # within float32's range
    expected = np.array(truth).astype(np.float32)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.broadcast_to(expected, got.shape), rtol=2**-23, atol=0)
    # float64 agrees (it did on main)
    got64 = crossent.softmax_cross_entropy_grad(
        logits[:1].astype(np.float64),
        np.array([label]),
        label_smoothing=0.1,
        temperature=1e-30,
        reduction="none",
        **kwargs,
    )
    np.testing.assert_allclose(got64[0], truth, rtol=1e-13, atol=0)
