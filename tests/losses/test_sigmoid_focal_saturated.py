"""Sigmoid focal loss at saturated logits with ``gamma = 0`` or ``alpha_t = 0``.

Two wrong numbers found while pinning the small-input work of issue 13: with
``gamma = 0`` a saturated right logit (``x = +inf`` with ``t = 1``, ``x = -inf`` with
``t = 0``) gave NaN, as :math:`\\exp(0 \\cdot \\log 0)`; with ``alpha = 1`` a saturated wrong
negative (``x = +inf``, ``t = 0``) gave NaN, as :math:`0 \\cdot \\infty`. The oracle is the
definition term by term in Python floats, with :math:`(1-p_t)^0 = 1` and a term of class
weight :math:`\\alpha_t = 0` absent, as a zero class weight is everywhere in crossent.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent

_LOGITS = [math.inf, -math.inf, 40.0, -40.0, 0.0, 3.0]


def _bce(x: float, t: float) -> float:
    """-t log sigma(x) - (1 - t) log sigma(-x), with 0 * inf = 0 (t is 0 or 1 here)."""
    if t == 1.0:
        return 0.0 if x == math.inf else (math.inf if x == -math.inf else math.log1p(math.exp(-x)))
    return 0.0 if x == -math.inf else (math.inf if x == math.inf else math.log1p(math.exp(x)))


def _sigmoid(v: float) -> float:
    """sigma(v) without cancellation or overflow (sigma(-inf) = 0, sigma(inf) = 1)."""
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    return 0.0 if v == -math.inf else math.exp(v) / (1.0 + math.exp(v))


def _oracle(x: float, t: float, gamma: float, alpha: float | None) -> float:
    alpha_t = 1.0 if alpha is None else (alpha if t == 1.0 else 1.0 - alpha)
    if alpha_t == 0.0:
        return 0.0
    one_minus_pt = _sigmoid(-x) if t == 1.0 else _sigmoid(x)
    modulation = 1.0 if gamma == 0.0 else one_minus_pt**gamma
    return alpha_t * modulation * _bce(x, t)


@pytest.mark.parametrize(
    ("gamma", "alpha"), [(0.0, None), (0.0, 0.25), (0.0, 1.0), (2.0, 1.0), (2.0, 0.0), (0.5, 0.0)]
)
@pytest.mark.parametrize("target", [0.0, 1.0])
def test_sigmoid_focal_loss_saturated_logits_give_the_definition_not_nan(
    gamma: float, alpha: float | None, target: float
) -> None:
    x = np.array(_LOGITS)
    t = np.full_like(x, target)
    got = crossent.sigmoid_focal_loss(x, t, gamma=gamma, alpha=alpha, reduction="none")
    expected = [_oracle(v, target, gamma, alpha) for v in _LOGITS]
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=0.0)


def test_sigmoid_focal_loss_gamma_zero_is_the_cross_entropy_at_every_logit() -> None:
    x = np.array(_LOGITS * 2)
    t = np.repeat([1.0, 0.0], len(_LOGITS))
    focal = crossent.sigmoid_focal_loss(x, t, gamma=0.0, reduction="none")
    plain = crossent.sigmoid_cross_entropy(x, t, reduction="none")
    np.testing.assert_array_equal(focal, plain)
