"""Hostile API pass 2: a class-weighted term past the float range, under ``-W error``.

``softmax_cross_entropy([[1e308, -1e308, 0]], [0], weight=[0.5, 1.25, 2],
label_smoothing=0.1)``: the smoothing term :math:`\\tfrac{\\varepsilon}{C}\\sum_c w_c
(\\mathrm{LSE} - z_c)` has the product :math:`1.25 \\cdot 2\\cdot 10^{308}`, past the
float64 range, while the loss is :math:`1.5\\cdot 10^{307}`; the far-row guard forms the
row again, but ``_reduction.weighted_term`` let NumPy warn of the overflow first, which
under ``-W error`` (CI) was raised instead of the loss (and of the gradient). Oracle:
mpmath at 2300 bits (the log-sum-exp of :math:`10^{308}` keeps its :math:`\\log` digits).
The warning cases fail on main.
"""

from __future__ import annotations

import warnings

import mpmath
import numpy as np
import pytest

import crossent

_LOGITS = [1e308, -1e308, 0.0]
_WEIGHT = [0.5, 1.25, 2.0]
_EPS = 0.1


@mpmath.workprec(2300)
def _oracle(label: int) -> tuple[float, list[float]]:
    """Loss and gradient (one row, sum) of the docstring's definition."""
    z = [mpmath.mpf(v) for v in _LOGITS]
    w = [mpmath.mpf(v) for v in _WEIGHT]
    top = max(z)
    lse = top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in z))
    p = [mpmath.exp(v - lse) for v in z]
    c = len(z)
    eps = mpmath.mpf(_EPS)
    loss = w[label] * (1 - eps) * (lse - z[label]) + eps / c * mpmath.fsum(
        wc * (lse - zc) for wc, zc in zip(w, z, strict=True)
    )
    total = mpmath.fsum(w)
    grad = [
        w[label] * (1 - eps) * (p[k] - (k == label)) + eps / c * (total * p[k] - w[k])
        for k in range(c)
    ]
    return float(loss), [float(g) for g in grad]


def test_weighted_smoothing_term_past_the_range_is_quiet() -> None:
    loss, grad = _oracle(0)
    assert loss == pytest.approx(1.5e307, rel=1e-12)  # finite
    x, y = np.array([_LOGITS]), np.array([0])
    kwargs = {"weight": np.array(_WEIGHT), "label_smoothing": _EPS}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = crossent.softmax_cross_entropy(x, y, reduction="none", **kwargs)
        got_grad = crossent.softmax_cross_entropy_grad(x, y, reduction="sum", **kwargs)
    assert got[0] == pytest.approx(loss, rel=1e-14)
    np.testing.assert_allclose(got_grad[0], grad, rtol=1e-14, atol=0)


@pytest.mark.parametrize("label", [1, 2])
def test_weighted_terms_that_truly_overflow_are_inf_quietly(label: int) -> None:
    """Labels 1 and 2: :math:`0.9\\,w_y(\\mathrm{LSE} - z_y)` is 2.25e308 and 1.8e308,
    past the range: ``inf``, as it is, without a warning."""
    loss, _ = _oracle(label)
    assert loss == np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = crossent.softmax_cross_entropy(
            np.array([_LOGITS]),
            np.array([label]),
            weight=np.array(_WEIGHT),
            label_smoothing=_EPS,
            reduction="none",
        )
    assert got[0] == np.inf
