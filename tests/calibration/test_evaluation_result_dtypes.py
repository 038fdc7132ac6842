"""The evaluation API's result dtype, and the sign of a certain label's surprisal.

The project's rule (docs/index.md, "Result dtypes"): the measures and losses compute in
the input's dtype, long double included; the evaluation API computes in float64 on the
host and returns Python floats or float64 arrays whatever the input's dtype, long double
predictions rounded to float64 first. ``negative_log_likelihood`` of ``np.longdouble``
returning float64 is that rule, the same as ``brier_score``, ``spherical_score`` and
``accuracy`` (the first two tests guard it: they pass on main).

Main: ``negative_log_likelihood(..., reduction="none")`` gave ``-0.0`` for a label of
probability 1 (``-log 1``), for float64 input too, where ``crossent.surprisal`` gives
``+0.0``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent

LD = np.longdouble
_EVALUATION: dict[str, Callable[..., Any]] = {
    "negative_log_likelihood": crossent.negative_log_likelihood,
    "brier_score": crossent.brier_score,
    "spherical_score": crossent.spherical_score,
    "accuracy": crossent.accuracy,
}
_P = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.25, 0.25, 0.5]])
_Y = np.array([0, 1, 2])


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "longdouble"])
@pytest.mark.parametrize("name", list(_EVALUATION))
def test_every_evaluation_score_is_float64_whatever_the_input(name: str, dtype: str) -> None:
    probs = _P.astype(dtype)
    probs = probs / probs.sum(axis=1, keepdims=True)
    rows = _EVALUATION[name](probs, _Y, reduction="none")
    assert isinstance(rows, np.ndarray)
    assert rows.dtype == np.float64
    assert type(_EVALUATION[name](probs, _Y)) is float


@pytest.mark.parametrize("name", list(_EVALUATION))
def test_long_double_predictions_are_read_as_their_float64_rounding(name: str) -> None:
    """The documented rounding, bit for bit (and the mean's)."""
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.ones(4), size=50).astype(LD)
    probs = probs / probs.sum(axis=1, keepdims=True)
    labels = rng.integers(0, 4, size=50)
    rounded = probs.astype(np.float64)
    for reduction in ("none", "mean"):
        got = _EVALUATION[name](probs, labels, reduction=reduction)
        want = _EVALUATION[name](rounded, labels, reduction=reduction)
        np.testing.assert_array_equal(got, want)


def test_the_documented_long_double_example() -> None:
    """docs/index.md and the docstring: ``1 - 2**-60`` scores 0 in the evaluation API,
    8.67e-19 in ``surprisal`` (long double, against mpmath)."""
    if np.finfo(LD).nmant < 63:  # pragma: no cover - platforms without x87
        pytest.skip("longdouble is not extended precision here")
    p = LD(1) - LD(2) ** -60
    probs = np.array([[p, (1 - p) / 2, (1 - p) / 2]], dtype=LD)
    assert crossent.negative_log_likelihood(probs, [0], reduction="none")[0] == 0.0
    with mpmath.workdps(40):
        exact = -mpmath.log1p(-(mpmath.mpf(2) ** -60))
    got = crossent.surprisal(p)
    assert got.dtype == LD
    assert abs(mpmath.mpf(float(got)) - exact) / exact < 1e-15
    assert f"{float(got):.3g}" == "8.67e-19"


@pytest.mark.parametrize("dtype", ["float32", "float64", "longdouble"])
@pytest.mark.parametrize("form", ["probs", "log_probs"])
def test_a_certain_label_has_surprisal_plus_zero(form: str, dtype: str) -> None:
    """Main: ``-0.0`` (``-log 1``)."""
    probs = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]], dtype=dtype)
    values = (
        probs
        if form == "probs"
        else np.log(probs, where=probs > 0, out=np.full_like(probs, -np.inf))
    )
    got = crossent.negative_log_likelihood(values, [0, 1], form=form, reduction="none")
    assert got[0] == 0.0
    assert not np.signbit(got[0])
    assert not np.signbit(crossent.surprisal(probs[0, 0]))  # the measure's sign
    assert got[1] == pytest.approx(np.log(2.0), rel=1e-7)
