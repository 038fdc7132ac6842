r"""Hostile pass: the sigmoid focal gradient where :math:`\sigma(x)` meets the target.

The focal gradient is :math:`m\,[\gamma(1-2t)\,\frac{\sigma(x)\sigma(-x)}{1-p_t}\,\ell +
(\sigma(x) - t)]`; on main (c7e5b3b6) its :math:`\sigma(x) - t` was formed as
``(1 - t) * sigma - t * sigma_neg`` in the dtype, which cancels where :math:`\sigma(x)
\approx t`, while ``sigmoid_cross_entropy_grad`` forms the same difference within an
ulp (``_sigmoid_grad``). At :math:`\gamma = 0` the focal loss *is* the cross-entropy,
yet at ``x = -0.5376461041840627``, ``t = 0.3687495337464227``
``sigmoid_focal_loss_grad(..., gamma=0)`` was ``-1.420562542811532e-05`` (3339 float64
ulps off mpmath's ``-1.4205625428125852e-05``; float32: 1579 ulps) and at
:math:`\gamma = 10^{-3}` 656 ulps off, small and large calls alike.

Oracle: mpmath at 60 digits, the two terms of the formula formed separately; the bound
is 16 ulps of :math:`|m|\,(|\text{focus}| + |\sigma(x) - t|)` (the focus term's
exponentials and logarithms take a few; the sum of the two terms can itself cancel at
the gradient's root, which is not claimed here). At :math:`\gamma = 0` the focal
gradient is the cross-entropy's: bit for bit in float64 (and float32 without a
scale), within an ulp of float32 otherwise (the kernel scales before rounding to
float32, the focal path after).
"""

from __future__ import annotations

from typing import Any

import mpmath
import numpy as np
import pytest

import crossent

# (x, t) with sigma(x) within a few ulps of the (smoothed) target t
POINTS = [
    (-0.5376461041840627, 0.3687495337464227),
    (2.1972245773362196, 0.9),
    (-4.59511985013459, 0.01),
    (-0.17164231252546033, 0.4464558611770766),
]


def _oracle(x: float, t: float, gamma: float, eps: float) -> tuple[float, float]:
    """``(gradient, scale)``: the focal gradient of one entry and
    :math:`|m|(|\\text{focus}| + |\\sigma(x) - t|)`, at 60 digits."""
    with mpmath.workdps(60):
        z, ts = mpmath.mpf(x), mpmath.mpf(t) * (1 - mpmath.mpf(eps)) + mpmath.mpf(eps) / 2
        s, s_neg = 1 / (1 + mpmath.exp(-z)), 1 / (1 + mpmath.exp(z))
        bce = -(ts * mpmath.log(s) + (1 - ts) * mpmath.log(s_neg))
        q = ts * s_neg + (1 - ts) * s  # 1 - p_t
        m = q**gamma if gamma else mpmath.mpf(1)
        focus = gamma * (1 - 2 * ts) * s * s_neg / q * bce
        plain = s - ts
        return float(m * (focus + plain)), float(abs(m) * (abs(focus) + abs(plain)))


def _entries(dtype: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The points first, then ordinary entries up to ``n`` (the small and large paths)."""
    rng = np.random.default_rng(13)
    x = np.array([p[0] for p in POINTS] + list(rng.normal(size=n - len(POINTS))))
    t = np.array([p[1] for p in POINTS] + list(rng.uniform(size=n - len(POINTS))))
    return x.astype(dtype), t.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("n", [len(POINTS), 20000], ids=["small", "large"])
@pytest.mark.parametrize("gamma", [0.0, 1e-3, 1e-2])
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_focal_gradient_where_sigma_meets_the_target(
    dtype: Any, n: int, gamma: float, eps: float
) -> None:
    x, t = _entries(dtype, n)
    if eps:  # sigma(x) meets the smoothed target: move x onto its logit
        ts = t.astype(np.float64) * (1 - eps) + eps / 2
        x = np.log(ts / (1 - ts)).astype(dtype)
    grad = crossent.sigmoid_focal_loss_grad(x, t, gamma=gamma, label_smoothing=eps, reduction="sum")
    ulp = float(np.finfo(dtype).eps)
    for i in range(len(POINTS)):
        truth, scale = _oracle(float(x[i]), float(t[i]), gamma, eps)
        assert abs(float(grad[i]) - truth) <= 16 * ulp * scale, (i, float(grad[i]), truth)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("n", [len(POINTS), 20000], ids=["small", "large"])
def test_focal_gradient_at_gamma_zero_is_the_cross_entropy_gradient(dtype: Any, n: int) -> None:
    x, t = _entries(dtype, n)
    w = np.linspace(0.5, 2.0, n).astype(dtype)
    for kw in ({}, {"weight": w}, {"label_smoothing": 0.1}):
        for reduction in ("none", "sum", "mean"):
            focal = crossent.sigmoid_focal_loss_grad(x, t, gamma=0.0, reduction=reduction, **kw)
            plain = crossent.sigmoid_cross_entropy_grad(x, t, reduction=reduction, **kw)
            if dtype == np.float64 or (reduction != "mean" and "weight" not in kw):
                np.testing.assert_array_equal(focal, plain)
            else:
                np.testing.assert_allclose(
                    focal, plain, rtol=2 * float(np.finfo(dtype).eps), atol=0
                )
