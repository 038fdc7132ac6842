"""Hostile API pass: a fixed smooth-ECE bandwidth below the grid's resolution.

``smooth_calibration_error`` floors its bandwidth search at ``min_bandwidth`` >= 1/1024,
where the grid of 16385 points still samples the kernel 16 times a sigma, but a fixed
``bandwidth`` was accepted anywhere in (0, 1]: ``bandwidth=1e-9`` on 80 distinct
confidences gave 0.5476, where the definition's value is the mean ``|y_i - f_i|``,
0.5511 (a kernel far narrower than the gaps between the points and their distance to 0
and 1 integrates each residual to itself; two confidences closer than the grid's spacing
shared its cells). Now refused by name, as ``min_bandwidth`` is. The refusal tests fail
on main (no error); the others pass there too.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent import InputError


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(80, 3)) * 2
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True), rng.integers(0, 3, 80)


@pytest.mark.parametrize("bandwidth", [1e-9, 1e-4, 1.0 / 1024 * (1 - 2**-50)])
def test_fixed_bandwidth_below_the_grid_is_refused(bandwidth: float) -> None:
    probs, labels = _data()
    with pytest.raises(InputError, match=r"`bandwidth` must be at least 1/1024.*got"):
        crossent.smooth_calibration_error(probs, labels, bandwidth=bandwidth)


def test_the_floor_reaches_the_limit_of_separated_confidences() -> None:
    """At the floor the grid is still exact enough: confidences 0.1 apart and 0.1 from
    the ends give the sigma -> 0 limit, the mean |y_i - f_i| (main too)."""
    confidence = 0.1 + 0.8 * np.arange(9) / 8
    labels = np.array([1, 0, 1, 1, 0, 1, 0, 0, 1])
    limit = float(np.mean(np.abs(labels - confidence)))
    got = crossent.smooth_calibration_error(
        confidence, labels, scope="positive-class", bandwidth=1.0 / 1024
    )
    assert got.value == pytest.approx(limit, rel=1e-13)


def test_why_below_the_floor_was_wrong() -> None:
    """The data of the refusal tests have confidences 4.1e-5 apart, under the grid's
    spacing 6.1e-5: linear binning merged their residuals, which a kernel of 1e-9
    keeps apart, so main's 0.5476 was not the limit 0.5511 (mean |y_i - f_i|)."""
    probs, labels = _data()
    confidence = probs.max(axis=1)
    gaps = np.diff(np.sort(confidence))
    assert gaps.min() < 1.0 / crossent.calibration._smooth.GRID < 1e-9 * 1e5
    limit = float(np.mean(np.abs((probs.argmax(axis=1) == labels) - confidence)))
    assert limit == pytest.approx(0.5510579982887822, rel=1e-12)


@pytest.mark.parametrize("value", [0.0, -1.0, 1e-9])
def test_min_bandwidth_names_one_range(value: float) -> None:
    """min_bandwidth=-1 said "in [0, 1]" and 0 then "at least 1/1024"."""
    probs, labels = _data()
    with pytest.raises(InputError, match=r"`min_bandwidth` must be"):
        crossent.smooth_calibration_error(probs, labels, min_bandwidth=value)


def test_in_range_bandwidths_unchanged() -> None:
    probs, labels = _data()
    fixed = crossent.smooth_calibration_error(probs, labels, bandwidth=0.1)
    assert fixed.bandwidth == 0.1
    assert fixed.value == pytest.approx(0.39628145390310476, rel=1e-12)
    found = crossent.smooth_calibration_error(probs, labels, min_bandwidth=1.0 / 1024)
    assert found.value == crossent.smooth_calibration_error(probs, labels).value
