"""``reduction='parts'`` at weights whose sum (or weighted total) is past the float range,
or among the subnormals.

Weights of ``5.7e307`` are taken at a power of two of their size (``_weight_scale``), so
the ``'mean'`` is right; the parts were scaled back to ``inf``: ``(8.47e307, inf)`` for
4 rows of ``softmax_cross_entropy``, whose ``LossParts.mean()`` is 0.0 where the mean is
0.3714, or ``(inf, inf)`` (NaN); weights of ``5e-324`` gave subnormal parts whose
quotient is 0.25. No pair of float64 numbers holds them, so the call is refused, naming
``weight`` and the part, and saying how to scale.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent
from crossent.errors import InputError

_X = np.array([[2.0, 0.0, -1.0], [0.5, 1.0, 3.0], [1.0, 1.0, 1.0], [0.0, -2.0, 4.0]])
_Y = np.array([0, 2, 1, 2])
_P = np.array([[0.5, 0.25, 0.25]] * 4)
_T = (_X > 0.5).astype(np.float64)
_HUGE = 5.7e307

_CALLS: dict[str, Callable[..., Any]] = {
    "softmax_cross_entropy": lambda w, **k: crossent.softmax_cross_entropy(_X, _Y, weight=w, **k),
    "softmax_cross_entropy_with_targets": lambda w, **k: (
        crossent.softmax_cross_entropy_with_targets(_X, _P, weight=w, **k)
    ),
    "softmax_focal_loss": lambda w, **k: crossent.softmax_focal_loss(_X, _Y, weight=w, **k),
    "poly1_cross_entropy": lambda w, **k: crossent.poly1_cross_entropy(_X, _Y, weight=w, **k),
    "sigmoid_cross_entropy": lambda w, **k: crossent.sigmoid_cross_entropy(_X, _T, weight=w, **k),
    "sigmoid_focal_loss": lambda w, **k: crossent.sigmoid_focal_loss(_X, _T, weight=w, **k),
}
"""Every loss with weights and ``reduction='parts'``."""


def _quiet(call: Callable[[], Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return call()


@pytest.mark.parametrize("name", list(_CALLS))
def test_overflowing_parts_are_refused(name: str) -> None:
    """Main: ``(finite, inf)`` (``mean()`` 0.0) or ``(inf, inf)`` (NaN, a warning)."""
    with pytest.raises(
        InputError, match=r"`weight`: reduction='parts' cannot hold the .* past the "
    ):
        _quiet(lambda: _CALLS[name](np.full(3, _HUGE), reduction="parts"))


@pytest.mark.parametrize("name", list(_CALLS))
def test_parts_below_the_overflow_are_the_scaled_parts(name: str) -> None:
    """Weights ``2**1000`` (sum 4 * 2**1000, finite): the parts are ``2**1000`` times the
    parts at weight 1, the mean theirs (guards the refusal against firing early)."""
    ones = _CALLS[name](np.ones(3), reduction="parts")
    got = _quiet(lambda: _CALLS[name](np.full(3, 2.0**1000), reduction="parts"))
    assert got.total == np.ldexp(ones.total, 1000)
    assert got.normalizer == np.ldexp(ones.normalizer, 1000)
    assert got.mean() == ones.mean()


@pytest.mark.parametrize("name", list(_CALLS))
def test_subnormal_parts_are_refused(name: str) -> None:
    """Main: weights of ``5e-324`` gave parts among the subnormals, ``(5e-324, 2e-323)``
    for ``softmax_cross_entropy`` (``mean()`` 0.25 where the mean is 0.3714), a total of
    0.0 for the focal losses (``mean()`` 0)."""
    with pytest.raises(InputError, match=r"reduction='parts' cannot hold the .* below the "):
        _quiet(lambda: _CALLS[name](np.full(3, 5e-324), reduction="parts"))


@pytest.mark.parametrize("weight", [0.0, -0.0])
@pytest.mark.parametrize("name", list(_CALLS))
def test_weights_all_zero_give_empty_parts(name: str, weight: float) -> None:
    """Every row of weight 0 (or -0.0): parts ``(0, 0)``, ``mean()`` 0, and ``'mean'`` 0
    with a zero gradient, docs/differs.md's 'mean over nothing' (passes on main)."""
    parts = _quiet(lambda: _CALLS[name](np.full(3, weight), reduction="parts"))
    assert (parts.total, parts.normalizer, parts.mean()) == (0.0, 0.0, 0.0)
    assert _quiet(lambda: _CALLS[name](np.full(3, weight))) == 0.0


def test_refusal_names_the_true_part() -> None:
    with pytest.raises(InputError, match=r"cannot hold the normalizer 2\.2800e\+308, past"):
        crossent.softmax_cross_entropy(_X, _Y, weight=np.full(3, _HUGE), reduction="parts")


def _mp_softmax_mean(weight: np.ndarray) -> mpmath.mpf:
    total = normalizer = mpmath.mpf(0)
    for row, label in zip(_X, _Y, strict=True):
        lse = mpmath.log(mpmath.fsum(mpmath.exp(mpmath.mpf(v)) for v in row))
        w = mpmath.mpf(weight[label])
        total += w * (lse - mpmath.mpf(row[label]))
        normalizer += w
    return total / normalizer


def _mp_sigmoid_mean(weight: float) -> mpmath.mpf:
    total = mpmath.mpf(0)
    for x, t in zip(_X.ravel(), _T.ravel(), strict=True):
        x = mpmath.mpf(x)
        total += mpmath.mpf(weight) * (mpmath.log1p(mpmath.exp(x)) - mpmath.mpf(t) * x)
    return total / (mpmath.mpf(weight) * _X.size)


@pytest.mark.parametrize("scale", [_HUGE, 1.7976931348623157e308])
def test_mean_at_the_same_weights_against_mpmath(scale: float) -> None:
    """The ``'mean'`` the refusal points to is right at these weights (mpmath, 50 digits):
    it passes on main too (guards the weight scaling of ``'mean'``)."""
    weight = np.array([1.0, 0.5, 0.75]) * scale
    with mpmath.workdps(50):
        softmax = float(_mp_softmax_mean(weight))
        sigmoid = float(_mp_sigmoid_mean(scale))
    got = _quiet(lambda: crossent.softmax_cross_entropy(_X, _Y, weight=weight))
    assert got == pytest.approx(softmax, rel=4e-16)
    got = _quiet(lambda: crossent.sigmoid_cross_entropy(_X, _T, weight=np.full(3, scale)))
    assert got == pytest.approx(sigmoid, rel=4e-16)


def test_torch_parts_are_refused_too() -> None:
    torch = pytest.importorskip("torch")
    weight = torch.full((3,), _HUGE, dtype=torch.float64)
    with pytest.raises(InputError, match="reduction='parts' cannot hold"):
        crossent.softmax_cross_entropy(
            torch.tensor(_X), torch.tensor(_Y), weight=weight, reduction="parts"
        )
