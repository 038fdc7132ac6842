"""Bootstrap replicates whose weighted products pass the float range (issue 13).

A loss difference of -1e308 drawn three times made ``w * v`` -inf, so a replicate and
the interval's lower end were -inf where every replicate's mean is finite (at most
1e308 in size). The oracle is exact rational arithmetic (``fractions.Fraction``).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

import crossent
from crossent.calibration._bootstrap import weighted_mean


def _exact_mean(weights: np.ndarray, values: np.ndarray) -> float:
    drawn = [
        (Fraction(float(w)), Fraction(float(v)))
        for w, v in zip(weights, values, strict=True)
        if w > 0
    ]
    return float(sum(w * v for w, v in drawn) / sum(w for w, _ in drawn))


@pytest.mark.parametrize(
    ("weights", "values"),
    [
        ([3.0, 0.0, 0.0], [-1e308, 1.0, 2.0]),
        ([2.0, 1.0, 0.0], [1.5e308, 1.5e308, -4.0]),
        ([2.0, 2.0, 1.0], [1.7e308, -1.7e308, 1.0e308]),
        ([1.0, 1.0, 1.0], [1.0, 2.0, 4.0]),
    ],
    ids=["one-row-thrice", "same-sign-sum", "mixed-signs", "ordinary"],
)
def test_weighted_mean_is_the_exact_mean_rounded(weights: list[float], values: list[float]) -> None:
    w, v = np.array(weights), np.array(values)
    assert weighted_mean(w, v) == pytest.approx(_exact_mean(w, v), rel=4e-16)


def test_weighted_mean_keeps_an_infinite_drawn_value() -> None:
    assert weighted_mean(np.array([1.0, 2.0]), np.array([1.0, math.inf])) == math.inf
    assert weighted_mean(np.array([1.0, 0.0]), np.array([1.0, math.inf])) == 1.0


def test_compare_log_loss_interval_is_finite_when_every_replicate_is() -> None:
    big = np.array([[1e308, -1e308, 0.0], [-np.inf, 0.0, 1.0], [5e-324, 0.0, -5e-324]])
    result = crossent.compare_log_loss(
        big, big[::-1], [0, 1, 2], form_a="logits", form_b="logits", resamples=20
    )
    # each example's difference is finite (-1.10, 0, -1e308): so is every replicate
    assert math.isfinite(result.low)
    assert -1e308 <= result.low <= result.high <= 0.0
