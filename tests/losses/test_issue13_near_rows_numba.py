"""Issue 13: ``NearRows.loss`` compiled (``_near_rows_numba``) for float64 NumPy rows.

The compiled loss against the NumPy formulas of ``_near_rows`` on random near rows
(temperatures 1 to 1e300, 2 to 50 classes, both directions): the same formula, with
libm's exp/log in place of NumPy's vectorised loops, so within 8 ulps (observed: up to
5, one row in 1000); and against mpmath (200 bits) on rows whose KL is far below its
terms. ``NearRows.loss`` takes the compiled loss for float64 NumPy rows.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

pytest.importorskip("numba")

from crossent.losses import _near_rows
from crossent.losses._near_rows import NearRows
from crossent.losses._near_rows_numba import near_loss64

ULPS = 8


def _numpy_formulas(z: np.ndarray, v: np.ndarray, t: float, forward: bool) -> np.ndarray:
    """``NearRows.loss`` by the NumPy formulas (the compiled loss switched off)."""
    original = _near_rows._compiled_loss
    _near_rows._compiled_loss = lambda rows: None
    try:
        return NearRows(z, v, t).loss(forward=forward)
    finally:
        _near_rows._compiled_loss = original


def _ulps(a: np.ndarray, b: np.ndarray) -> float:
    """The largest :math:`|a - b|` in ulps of ``b`` (0 where equal)."""
    with np.errstate(invalid="ignore"):
        gaps = np.where(a == b, 0.0, np.abs(a - b) / np.spacing(np.abs(b)))
    return float(gaps.max())


@pytest.mark.parametrize("forward", [True, False])
def test_compiled_loss_matches_the_numpy_formulas(forward: bool) -> None:
    rng = np.random.default_rng(13)
    for case in range(150):
        classes = int(rng.integers(2, 51))
        temperature = float(10.0 ** rng.uniform(0.0, 300.0)) if case % 2 else 1.0 + case
        z = rng.standard_normal((3, classes)) * rng.choice([1.0, 10.0, 1e3])
        v = z + rng.choice([1e-3, 1e-6, 1e-10]) * rng.standard_normal((3, classes))
        compiled = near_loss64(z, v, temperature, forward=forward)
        assert np.all(compiled >= 0.0)
        assert _ulps(compiled, _numpy_formulas(z, v, temperature, forward)) <= ULPS


def _mpmath_loss(z: np.ndarray, v: np.ndarray, t: float, forward: bool) -> float:
    """:math:`T^2 D` of one row in mpmath (200 bits), rounded to float64."""
    with mpmath.workprec(200):
        temperature = mpmath.mpf(t)

        def log_softmax(x: np.ndarray) -> list[mpmath.mpf]:
            scaled = [mpmath.mpf(float(c)) / temperature for c in x]
            lse = mpmath.log(mpmath.fsum(mpmath.exp(c) for c in scaled))
            return [c - lse for c in scaled]

        first, second = (v, z) if forward else (z, v)
        a, b = log_softmax(first), log_softmax(second)
        kl = mpmath.fsum(mpmath.exp(x) * (x - y) for x, y in zip(a, b, strict=True))
        return float(temperature**2 * kl)


@pytest.mark.parametrize("forward", [True, False])
@pytest.mark.parametrize(
    ("temperature", "step"),
    [(1.0, 1e-3), (4.0, 1e-6), (1e8, 0.3), (3.0, math.inf), (1.0, math.inf)],
)
def test_compiled_loss_against_mpmath(temperature: float, step: float, forward: bool) -> None:
    """Near rows (the series of psi), and rows far apart (step inf: an independent
    teacher, a KL of about 0.7, log1p's branch; at T = 1 the direct form of |U/T| >= 1/2)."""
    rng = np.random.default_rng(7)
    z = rng.standard_normal((2, 10))
    noise = rng.standard_normal((2, 10))
    v = noise if math.isinf(step) else z + step * noise
    compiled = NearRows(z, v, temperature).loss(forward=forward)
    for row in range(2):
        expected = _mpmath_loss(z[row], v[row], temperature, forward)
        assert math.isclose(compiled[row], expected, rel_tol=ULPS * 2.0**-52)


def test_near_rows_take_the_compiled_loss_for_float64(monkeypatch) -> None:
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return near_loss64(*args, **kwargs)

    monkeypatch.setattr(_near_rows, "_compiled_loss", lambda rows: counted)
    z = np.array([[0.0, 1.0, 2.0]])
    NearRows(z, z + 1e-4, 2.0).loss(forward=True)
    assert calls == [1]
    monkeypatch.undo()
    assert _near_rows._compiled_loss(NearRows(z, z, 2.0)) is near_loss64
    assert _near_rows._compiled_loss(NearRows(z.astype(np.float32), z, 2.0)) is None
