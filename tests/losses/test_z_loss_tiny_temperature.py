"""Hostile pass (apileft3): the z-loss at temperatures below :math:`2^{-64}`.

The gradient's overflow fix of the last stop scaled the LSE by a fixed :math:`2^{-64}`,
which overflows again where :math:`m/T` passes :math:`2^{1088}`:
``softmax_cross_entropy_grad([[1e308, -1e308]], [0], temperature=2**-70,
z_loss=1e-50)`` was ``[[nan, nan]]`` on main (4d024a0), mpmath ``[[2.79e300, 0]]``, on
every backend. The forward's far rows formed :math:`(\\lambda\\omega)S^2` with a
subnormal :math:`\\lambda`, which such a temperature calls for, rounded to a multiple of
:math:`\\lambda`: ``softmax_cross_entropy([[1e300, -1e300]], [0], temperature=1e-14,
z_loss=5e-324)`` was 4.389e304, mpmath 4.941e304. Oracle: mpmath at 450 digits (50
past the cancellations). Every case fails on main.
"""

from __future__ import annotations

import warnings
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent


def _oracle(z: list[float], target: list[float], temperature: float, z_loss: float):
    r"""Loss and gradient of :math:`\sum_c t_c(\operatorname{LSE} - z_c/T) +
    \lambda\operatorname{LSE}^2` (:math:`\sum_c t_c = 1`): the gradient is
    :math:`((1 + 2\lambda\operatorname{LSE})p - t)/T`; at 50 digits beyond the
    magnitude of :math:`z/T` (up to 1e330 here: ``LSE - z_c`` of such rows, and :math:`1 +
    2\lambda\operatorname{LSE}` of a small LSE, cancel that many digits)."""
    with mpmath.workdps(450):
        t = mpmath.mpf(temperature)
        x = [mpmath.mpf(v) / t for v in z]
        top = max(x)
        lse = top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in x))
        lam = mpmath.mpf(z_loss)
        coef = 1 + 2 * lam * lse
        tm = [mpmath.mpf(v) for v in target]
        grad = [(coef * mpmath.exp(v - lse) - tc) / t for v, tc in zip(x, tm, strict=True)]
        loss = mpmath.fsum(tc * (lse - v) for v, tc in zip(x, tm, strict=True) if tc)
        return float(loss + lam * lse * lse), [float(g) for g in grad]


GRADIENT_CASES = [
    # (logits row, temperature, z_loss): LSE * 2**-64 still overflows
    ([1e308, -1e308], 2.0**-70, 1e-50),
    ([1e308, 0.0], 2.0**-100, 1e-70),
    ([1e300, 5e299, -1e300], 2.0**-110, 1e-70),
    ([-1e308, -1e308], 2.0**-70, 1e-50),  # LSE = -inf in float64: a negative product
]


@pytest.mark.parametrize(("row", "temperature", "z_loss"), GRADIENT_CASES)
@pytest.mark.parametrize("label", [0, 1])
def test_z_loss_gradient_below_two_to_minus_64(
    backend: Any, row: list[float], temperature: float, z_loss: float, label: int
) -> None:
    """Main: NaN (an inf coefficient times p = 0), here the mpmath value."""
    z = np.array([row, [1.0, 2.0, 0.5][: len(row)]])
    onehot = [1.0 if c == label else 0.0 for c in range(len(row))]
    expected = [_oracle(list(r), onehot, temperature, z_loss)[1] for r in z]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = crossent.softmax_cross_entropy_grad(
            backend.asarray(z),
            backend.asarray(np.array([label, label])),
            temperature=temperature,
            z_loss=z_loss,
            reduction="sum",
        )
    np.testing.assert_allclose(backend.to_numpy(got), expected, rtol=1e-13, atol=0)


def test_z_loss_gradient_with_targets_below_two_to_minus_64(backend: Any) -> None:
    z = np.array([[1e308, -1e308], [1.0, 2.0]])
    targets = np.array([[0.25, 0.75], [0.5, 0.5]])
    temperature, z_loss = 2.0**-70, 1e-50
    expected = [
        _oracle(list(r), list(t), temperature, z_loss)[1] for r, t in zip(z, targets, strict=True)
    ]
    got = crossent.softmax_cross_entropy_with_targets_grad(
        backend.asarray(z),
        backend.asarray(targets),
        temperature=temperature,
        z_loss=z_loss,
        reduction="sum",
    )
    np.testing.assert_allclose(backend.to_numpy(got), expected, rtol=1e-13, atol=0)


FORWARD_CASES = [
    # (logits row, temperature, z_loss): LSE near 1e314, lambda subnormal
    ([1e300, -1e300], 1e-14, 5e-324),
    ([1e300, -1e300], 1e-14, 1.5e-323),
    ([1e299, 0.0], 1e-14, 7e-323),
]


@pytest.mark.parametrize(("row", "temperature", "z_loss"), FORWARD_CASES)
def test_z_loss_forward_of_a_subnormal_lambda(row, temperature, z_loss) -> None:
    """Main: (lambda * omega) * S**2 rounded to a multiple of lambda (11% off)."""
    z = np.array([row, [0.5, 0.25]])
    labels = np.array([0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the common path's overflow
        got = crossent.softmax_cross_entropy(
            z, labels, temperature=temperature, z_loss=z_loss, reduction="none"
        )
    expected = [
        _oracle(list(r), [1.0 if c == y else 0.0 for c in range(2)], temperature, z_loss)[0]
        for r, y in zip(z, labels, strict=True)
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=0)
