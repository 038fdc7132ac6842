"""Issue 13 (stop 73, lead): ``PlattScaling.fit`` with one row of log-odds past float64's
range, or past the square root of its range, on its own class's side.

Such a row's loss and gradient are 0 to float64 (``sigma(a s + b)`` rounds to its label),
so the fit is that of the other rows.  Main: logits ``[1e308, -1e308]`` (log-odds 2e308,
+-inf in float64) left the fit at its start (slope 1, intercept 0, ``converged_`` False,
an overflow warning); a row of log-odds 2e300 gave a Hessian entry ``0 * inf`` (NaN), so
the Newton polish failed and the fit kept L-BFGS-B's point, 5.5e-7 relative off.  Now:
the fit is on the halves of the log-odds where they pass float64 (its slope halved
back), and the Hessian's ``(w s) @ s`` is 0 at a weight of 0.  Oracle: the
maximum-likelihood fit of the other rows by Newton's method in mpmath (40 digits).
"""

from __future__ import annotations

import warnings

import mpmath
import numpy as np
import pytest

import crossent


def _rows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 2)), rng.integers(0, 2, 40)


@mpmath.workdps(40)
def _fit_of(log_odds: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The maximum-likelihood slope and intercept of ``sigma(a s + b)`` (Newton)."""
    a, b = mpmath.mpf("0.3"), mpmath.mpf("0.1")
    points = [(mpmath.mpf(float(s)), int(y)) for s, y in zip(log_odds, labels, strict=True)]
    for _ in range(40):
        h = mpmath.matrix(2, 2)
        g = mpmath.matrix(2, 1)
        for s, y in points:
            p = 1 / (1 + mpmath.exp(-(a * s + b)))
            w = p * (1 - p)
            g[0] += (p - y) * s
            g[1] += p - y
            h[0, 0] += w * s * s
            h[0, 1] += w * s
            h[1, 1] += w
        h[1, 0] = h[0, 1]
        step = mpmath.lu_solve(h, g)
        a, b = a - step[0], b - step[1]
    return float(a), float(b)


@pytest.mark.parametrize("far", [1e300, 1e308, 1.7e308])
def test_a_row_far_on_its_own_side_leaves_the_other_rows_fit(far: float) -> None:
    logits, labels = _rows()
    logits[0] = (far, -far) if labels[0] == 0 else (-far, far)
    want = _fit_of(logits[1:, 1] - logits[1:, 0], labels[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted = crossent.PlattScaling().fit(logits, labels)
    assert fitted.converged_
    assert not fitted.separated_
    assert fitted.slope_ == pytest.approx(want[0], rel=4e-16)
    assert fitted.intercept_ == pytest.approx(want[1], rel=4e-16)
