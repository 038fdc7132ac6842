"""Hostile review: the z-loss's overflow on NumPy rows is quiet.

:math:`\\lambda\\operatorname{LSE}^2` overflows past :math:`|\\operatorname{LSE}| \\approx
1.3\\cdot 10^{154}` on the common path; a public loss forms such a row again
(``_far_gaps``), finite where the term is. On main (07fd80d) each pass over such a
row warned (``RuntimeWarning: overflow encountered in multiply``, three times for one
call), so a correct call failed under ``-W error``; an ignored row warned of its
:math:`0\\cdot\\infty` too. Each test fails on main.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent


def _quiet(call: Callable[[], Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return call()


def _oracle(x: list[float], label: int, z_loss: float) -> float:
    """CE plus :math:`\\lambda\\operatorname{LSE}^2` at 60 digits."""
    with mpmath.workdps(60):
        xs = [mpmath.mpf(v) for v in x]
        lse = max(xs) + mpmath.log(mpmath.fsum(mpmath.exp(v - max(xs)) for v in xs))
        return float(lse - xs[label] + mpmath.mpf(z_loss) * lse**2)


@pytest.mark.parametrize("rows", [1, 300])  # the lean path and the full one
def test_finite_z_loss_past_the_square_range_is_quiet(rows: int) -> None:
    x = np.tile([1e200, 0.0], (rows, 1))
    got = _quiet(lambda: crossent.softmax_cross_entropy(x, np.zeros(rows, int), z_loss=1e-300))
    assert got == pytest.approx(_oracle([1e200, 0.0], 0, 1e-300), rel=1e-15)
    soft = np.tile([1.0, 0.0], (rows, 1))
    got = _quiet(lambda: crossent.softmax_cross_entropy_with_targets(x, soft, z_loss=1e-300))
    assert got == pytest.approx(_oracle([1e200, 0.0], 0, 1e-300), rel=1e-15)


def test_overflowing_z_loss_is_inf_quietly() -> None:
    x = np.array([[1e200, 0.0]])
    assert _quiet(lambda: crossent.softmax_cross_entropy(x, np.array([0]), z_loss=1.0)) == np.inf


def test_ignored_row_of_huge_logits_is_quiet() -> None:
    x = np.array([[0.0, -np.inf], [1e200, 0.0]])
    labels = np.array([0, -1])
    got = _quiet(lambda: crossent.softmax_cross_entropy(x, labels, ignore_index=-1, z_loss=1.0))
    assert got == _oracle([0.0, -1e308], 0, 1.0)  # the kept row: LSE = 0
    grad = _quiet(
        lambda: crossent.softmax_cross_entropy_grad(x, labels, ignore_index=-1, z_loss=1.0)
    )
    np.testing.assert_array_equal(grad, np.zeros((2, 2)))
