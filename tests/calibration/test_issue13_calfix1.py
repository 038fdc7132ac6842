"""Issue 13, branch calfix1: the fixes of ``tests/calibration/test_issue13_hostile25.py``'s
bugs, checked beyond the hostile pass's pins (mpmath oracles; the report's and the paired
comparison's paths to the same numbers)."""

from __future__ import annotations

import warnings

import mpmath
import numpy as np
import pytest

import crossent


def _log_softmax_at(row: list[float], temperature: float) -> list[float]:
    """mpmath's log-softmax of ``row / temperature`` (60 digits), as float64."""
    with mpmath.workdps(60):
        scaled = [mpmath.mpf(v) / mpmath.mpf(temperature) for v in row]
        top = max(scaled)
        ell = top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in scaled))
        return [float(v - ell) for v in scaled]


def _fitted(temperature: float) -> crossent.TemperatureScaling:
    """A scaler set to ``temperature`` (the fit's outcome, without a fit)."""
    scaler = crossent.TemperatureScaling(guard=False)
    scaler.temperature_ = temperature
    scaler.n_classes_ = 3
    return scaler


@pytest.mark.parametrize("temperature", [0.05, 0.5, 0.999])
def test_transform_below_one_of_huge_logits_matches_mpmath_without_warnings(temperature):
    rows = [
        [1e307, 0.999e307, 0.0],
        [-1e307, 1e307, 1e307 - 1e292],
        [1.797e308, 1.79e308, 0.0],  # (past float64's largest at each T < 1 here)
        [1e308, -1e308, 0.0],  # (z - max: -inf, as z / T would be)
        [3.0, -2.0, 0.5],
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # main: overflow, then inf - inf, warned
        got = _fitted(temperature).transform(np.array(rows), output="log_probs")
    for row, out in zip(rows, got, strict=True):
        want = _log_softmax_at(row, temperature)
        # (a log-probability of -1.9e-22 is 2.8e-15 off in relative terms: the
        # log-softmax's own rounding, at main's T = 1 too)
        np.testing.assert_allclose(out, want, rtol=1e-14, atol=0)


def test_transform_at_or_above_one_keeps_dividing_first():
    # (z - max) would overflow to -inf for this spread; z / T cannot at T >= 1
    row = [1.7e308, -1.7e308, 0.0]
    got = _fitted(20.0).transform(np.array([row]), output="log_probs")[0]
    np.testing.assert_allclose(got, _log_softmax_at(row, 20.0), rtol=4e-16, atol=0)


def test_report_gap_of_constant_logits_is_zero():
    labels = np.arange(100) % 5
    result = crossent.report(np.zeros((100, 5)), labels, form="logits", resamples=20).to_dict()
    assert result["recalibration_gap_nats"] == 0.0  # main: -8.9e-16, printed -0.0000


def test_paired_comparison_of_a_constant_difference_is_zero_width():
    probs_a = np.tile([[0.5, 0.25, 0.25]], (10, 1))
    probs_b = np.tile([[0.25, 0.5, 0.25]], (10, 1))
    result = crossent.compare_log_loss(probs_a, probs_b, np.zeros(10, int), resamples=100)
    assert result.low == result.difference == result.high == -np.log(2)
