"""Hostile pass: the softmax gradient with a z-loss where :math:`\\operatorname{LSE} =
m/T + \\ell` overflows although :math:`2\\lambda\\operatorname{LSE}` is finite.

``softmax_cross_entropy_grad([[1e308, -1e308]], [0], temperature=0.25, z_loss=1e-4)``
was ``[[nan, nan]]`` with an "invalid value encountered in multiply" warning on main
(afc1e53): the coefficient :math:`1 + 2\\lambda\\operatorname{LSE}` was ``inf`` and
:math:`\\infty\\cdot p_1 = \\infty\\cdot 0`. The truth (mpmath) is
:math:`(2\\lambda\\cdot 4\\cdot 10^{308}/T, 0) = (3.2\\cdot 10^{305}, 0)`. Fails on main.
"""

from __future__ import annotations

import warnings
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent


def _oracle(z: list[float], label: int, temperature: float, z_loss: float) -> list[float]:
    r""":math:`\partial/\partial z` of :math:`-\log p_y + \lambda\operatorname{LSE}^2`,
    :math:`p = \operatorname{softmax}(z/T)`: :math:`((1 + 2\lambda\operatorname{LSE})p -
    e_y)/T`, at 50 digits."""
    with mpmath.workdps(50):
        t = mpmath.mpf(temperature)
        x = [mpmath.mpf(v) / t for v in z]
        top = max(x)
        lse = top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in x))
        coef = 1 + 2 * mpmath.mpf(z_loss) * lse
        return [
            float((coef * mpmath.exp(v - lse) - (1 if c == label else 0)) / t)
            for c, v in enumerate(x)
        ]


@pytest.mark.parametrize("label", [0, 1])
def test_z_loss_gradient_of_an_overflowing_lse_is_finite(backend: Any, label: int) -> None:
    """Main: NaN (NumPy with a RuntimeWarning)."""
    z = np.array([[1e308, -1e308], [1.0, 2.0]])
    expected = [_oracle(list(row), label, 0.25, 1e-4) for row in z]
    assert expected[0][0] == pytest.approx(3.2e305, rel=1e-14)
    labels = backend.asarray(np.array([label, label]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = crossent.softmax_cross_entropy_grad(
            backend.asarray(z), labels, temperature=0.25, z_loss=1e-4, reduction="sum"
        )
    np.testing.assert_allclose(backend.to_numpy(got), expected, rtol=1e-14, atol=0)


def test_z_loss_gradient_of_an_overflowing_lse_with_targets_and_float32() -> None:
    targets = np.array([[0.25, 0.75]])
    z = np.array([[1e308, -1e308]])
    got = crossent.softmax_cross_entropy_with_targets_grad(
        z, targets, temperature=0.25, z_loss=1e-4, reduction="sum"
    )
    # (1 + 2 lambda LSE) p - t over T: class 0 as for a label, class 1 -t_1/T
    np.testing.assert_allclose(got, [[3.2e305, -3.0]], rtol=1e-14)
    z32 = np.array([[3e38, -3e38]], dtype=np.float32)
    got32 = crossent.softmax_cross_entropy_grad(
        z32, np.array([0]), temperature=0.25, z_loss=1e-4, reduction="sum"
    )
    expected = _oracle([float(v) for v in z32[0]], 0, 0.25, 1e-4)
    np.testing.assert_allclose(got32, [expected], rtol=1e-6)
