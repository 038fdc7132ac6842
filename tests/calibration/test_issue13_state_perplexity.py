"""Hostile API pass: the evaluation summary's perplexity near float64's limit and of NaN.

``EvaluationState.compute`` (and so ``report``) formed the perplexity as
``exp(nll) if nll < 709 else inf``: a mean NLL in (709, 709.78] gave ``inf`` where
:math:`e^{\\mathrm{NLL}}` is finite (``e^709.5`` = 1.35e308, what
``crossent.perplexity`` of the same rows gives), and a NaN NLL (NaN predictions with
``validate=False``) gave ``inf`` beside ``nll=nan``. 4 of the 5 tests fail on main.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import crossent


def _rows(nll: float) -> tuple[np.ndarray, np.ndarray]:
    """One row whose label has probability e^-nll (a subnormal past 708.4)."""
    return np.array([[-math.expm1(-nll), math.exp(-nll)]]), np.array([1])


@pytest.mark.parametrize("nll", [709.1, 709.5, 709.78])
def test_perplexity_is_finite_up_to_the_float64_limit(nll: float) -> None:
    probs, labels = _rows(nll)
    summary = crossent.EvaluationState(2).update(probs, labels).compute()
    expected = float(mpmath.exp(mpmath.mpf(summary.nll)))
    assert math.isfinite(expected)
    assert summary.perplexity == pytest.approx(expected, rel=1e-15)
    # the summary's is e^(the NLL it reports); crossent.perplexity's is e^H with H in
    # double-double (branch ppl1): the same number to an ulp or two of each
    assert summary.perplexity == pytest.approx(
        crossent.perplexity(np.array([0.0, 1.0]), probs[0]), rel=4.5e-16
    )
    report = crossent.report(probs, labels, resamples=3)
    assert report.summary.perplexity == summary.perplexity


def test_perplexity_of_a_nan_nll_is_nan() -> None:
    probs = np.array([[np.nan, 0.5], [0.5, 0.5]])
    summary = crossent.EvaluationState(2).update(probs, np.array([0, 1]), validate=False)
    result = summary.compute()
    assert math.isnan(result.nll)
    assert math.isnan(result.perplexity)


def test_perplexity_past_the_limit_is_inf() -> None:
    """Main too: a label of probability 0, and an NLL past log(max float)."""
    summary = crossent.EvaluationState(2).update(np.array([[1.0, 0.0]]), np.array([1])).compute()
    assert summary.perplexity == math.inf
    probs, labels = _rows(740.0)  # 5e-322: the NLL 740.0, e^740 overflows
    assert crossent.EvaluationState(2).update(probs, labels).compute().perplexity == math.inf
