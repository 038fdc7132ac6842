"""Issue 13 (stop 74, branch platt2): ``PlattScaling.fit`` with one row far on the WRONG
side of its label (log-odds 1e10 or more against it).

The optimum's slope is then about ``-log(S / G) / S`` (``S`` the row's log-odds, ``G``
the other rows' pull): -1.2e-9 for 2e10, -2.1e-306 for 3.4e308; or, where the other rows
pull the slope negative, their own fit with the far row's loss 0.  Main stopped far
from it: slope -6.8e-8 (55 times the optimum's) and ``converged_`` False at 1e10,
-4.0 at 1e100 with ``converged_`` True, the start (1, 0) at 1e300 and 1.7e308.

Oracle: the exact gradient of the mean NLL at the fitted point in mpmath (60 digits)
relative to the sums of its terms' sizes (at the optimum only their rounding is
left), and Newton's method in mpmath from the fitted point (quadratic there: it moves
the fit by its distance to the optimum).
"""

from __future__ import annotations

import warnings

import mpmath
import numpy as np
import pytest

import crossent


def _rows(far: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits, labels = rng.normal(size=(40, 2)), rng.integers(0, 2, 40)
    # label 1 at log-odds -2 far, label 0 at +2 far: the wrong side
    logits[0] = (far, -far) if labels[0] == 1 else (-far, far)
    return logits, labels


@mpmath.workdps(60)
def _check(logits: np.ndarray, labels: np.ndarray, slope: float, intercept: float) -> None:
    s = [mpmath.mpf(float(z1)) - mpmath.mpf(float(z0)) for z0, z1 in logits]
    a, b = mpmath.mpf(slope), mpmath.mpf(intercept)
    for step in range(6):
        g = [mpmath.mpf(0)] * 2
        size = [mpmath.mpf(0)] * 2
        h = [mpmath.mpf(0)] * 3
        for x, y in zip(s, labels, strict=True):
            t = a * x + b
            # r = sigma(t) - y as -sigma(-t) for y = 1: at 60 digits 1 - sigma(230)
            # would be 0, where the far row's residual, 1e-100, decides the slope
            r = -1 / (1 + mpmath.exp(t)) if y == 1 else 1 / (1 + mpmath.exp(-t))
            w = 1 / ((1 + mpmath.exp(t)) * (1 + mpmath.exp(-t)))
            g = [g[0] + r * x, g[1] + r]
            size = [size[0] + abs(r * x), size[1] + abs(r)]
            h = [h[0] + w * x * x, h[1] + w * x, h[2] + w]
        if step == 0:  # at the fit: the gradient is its terms' rounding
            assert abs(g[0]) <= 1e-12 * size[0], (g, size)
            assert abs(g[1]) <= 1e-12 * size[1], (g, size)
        det = h[0] * h[2] - h[1] * h[1]
        a -= (h[2] * g[0] - h[1] * g[1]) / det
        b -= (h[0] * g[1] - h[1] * g[0]) / det
    assert (slope, intercept) == pytest.approx((float(a), float(b)), rel=1e-14)


@pytest.mark.parametrize(
    ("far", "seed"), [(1e10, 0), (1e20, 1), (1e100, 2), (1e300, 3), (1.7e308, 4), (1.7e308, 1)]
)
def test_a_row_far_on_the_wrong_side_is_fitted_to_the_optimum(far: float, seed: int) -> None:
    logits, labels = _rows(far, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted = crossent.PlattScaling().fit(logits, labels)
    assert fitted.converged_
    assert not fitted.separated_
    _check(logits, labels, fitted.slope_, fitted.intercept_)


def test_the_scores_are_read_once_where_the_log_odds_pass_float64(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The halves of log-odds past float64 come from the same read of the scores."""
    from crossent.calibration import _recalibrators

    reads = []
    original = _recalibrators._finite_log_scores

    def counted(*args: object) -> np.ndarray:
        reads.append(1)
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(_recalibrators, "_finite_log_scores", counted)
    logits, labels = _rows(1e308, 0)
    logits[0] = logits[0][::-1]  # on its own side: the halves' fit
    crossent.PlattScaling().fit(logits, labels)
    assert len(reads) == 1


@pytest.mark.parametrize("far", [1e200, 1.7e308])
def test_tiny_log_odds_beside_a_far_row(far: float) -> None:
    """Log-odds of 1e-8, nearly separated, beside a row far on the wrong side: main's
    Newton polish handed SciPy a scaled gradient past float64 (ValueError: array must
    not contain infs or NaNs)."""
    rng = np.random.default_rng(3)
    if far == 1.7e308:
        rng.normal(size=30)  # (the second case of the same stream)
    log_odds = np.concatenate([rng.normal(size=30) * 1e-8, [far]])
    labels = (log_odds > 0).astype(int)
    labels[0], labels[-1] = 1 - labels[0], 0
    logits = np.stack([np.zeros_like(log_odds), log_odds], axis=1)
    fitted = crossent.PlattScaling().fit(logits, labels)
    assert fitted.converged_
    _check(logits, labels, fitted.slope_, fitted.intercept_)
