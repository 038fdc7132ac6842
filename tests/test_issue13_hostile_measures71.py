"""Hostile pass 71 over the measures and the evaluation functions (issue 13).

``smooth_calibration_error(..., validate=False)`` of a NaN or infinite confidence raised
NumPy's ``ValueError: 'list' argument must have no negative elements`` (after a
``RuntimeWarning: invalid value encountered in cast``) or the bisection's own
``ValueError`` ("the smECE fixed point's function is NaN"), where
``calibration_error`` of the same rows gives NaN, as ``validate=False`` documents.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import crossent

_ROWS = {
    "nan in a row": (np.array([[np.nan, 0.5], [0.5, 0.5]]), "top-label"),
    "nan second": (np.array([[0.5, np.nan], [0.5, 0.5]]), "top-label"),
    "inf in a row": (np.array([[np.inf, 0.5], [0.5, 0.5]]), "top-label"),
    "1-D nan": (np.array([np.nan, 0.5]), "positive-class"),
    "1-D inf": (np.array([np.inf, 0.5]), "positive-class"),
}


@pytest.mark.parametrize("case", list(_ROWS))
@pytest.mark.parametrize("bandwidth", [None, 0.1])
def test_smooth_calibration_error_unvalidated_non_finite_is_nan(
    case: str, bandwidth: float | None
) -> None:
    probs, scope = _ROWS[case]
    labels = np.array([0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from a NaN cast to an index
        result = crossent.smooth_calibration_error(
            probs, labels, scope=scope, bandwidth=bandwidth, validate=False
        )
        binned = crossent.calibration_error(probs, labels, scope=scope, validate=False)
    assert math.isnan(binned.value)  # the binned error's documented NaN (passes on main)
    assert math.isnan(result.value)
    assert math.isnan(float(result))
    assert result.n == 2
    if bandwidth is None:
        assert math.isnan(result.bandwidth)
    else:
        assert result.bandwidth == bandwidth
    assert result.grid.shape == result.accuracy.shape == result.density.shape
    assert np.isnan(result.accuracy).all()
    assert np.isnan(result.density).all()


def test_smooth_calibration_error_validated_still_refuses_nan() -> None:
    """A guard (passes on main): with validation the NaN is named, not computed."""
    with pytest.raises(crossent.InputError, match="NaN"):
        crossent.smooth_calibration_error(np.array([[np.nan, 0.5], [0.5, 0.5]]), [0, 1])


@pytest.mark.parametrize("eps", [0.6, 0.75, 0.999])
def test_binary_cross_entropy_eps_past_one_half_is_refused(eps: float) -> None:
    """``eps`` clips ``q`` to ``[eps, 1 - eps]``; past 1/2 that interval is empty and
    every ``q`` became ``1 - eps``: ``binary_cross_entropy([1, 1], [0.01, 0.99],
    eps=0.6)`` gave 0.916 for both, the confident right answer scored as the wrong one."""
    with pytest.raises(crossent.InputError, match=r"`eps` must be in \(0, 0\.5\]"):
        crossent.binary_cross_entropy(np.array([1.0, 1.0]), np.array([0.01, 0.99]), eps=eps)


def test_binary_cross_entropy_eps_at_most_one_half_still_clips() -> None:
    """A guard (passes on main): eps = 0.5 clips every q to 1/2; a small eps as before."""
    p, q = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert np.allclose(crossent.binary_cross_entropy(p, q, eps=0.5), math.log(2.0), rtol=1e-15)
    assert np.allclose(crossent.binary_cross_entropy(p, q, eps=1e-3), -math.log(1e-3), rtol=1e-12)


def test_gap_note_of_under_confident_predictions_does_not_blame_too_few_errors() -> None:
    """An under-confident model (calibrated logits scaled by 0.01: 126 misses in 400
    rows) fits T at the lower bound 0.05 in every fold; the report said "too few errors
    to cross-fit a temperature", the mirror of the upper bound's note fixed before."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(400, 4)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = (probs.cumsum(axis=1) < rng.random((400, 1))).sum(axis=1)
    payload = crossent.report(0.01 * logits, labels, form="logits", resamples=10).to_dict()
    assert payload["temperature"]["value"] == 0.05
    assert payload["accuracy"] < 0.8  # about a hundred misses
    assert payload["recalibration_gap_nats"] is None
    (note,) = [n for n in payload["notes"] if n.startswith("recalibration gap not reported")]
    assert not note.startswith("recalibration gap not reported: too few errors")
    assert "less confident than the labels warrant" in note
    assert "shrinks to the bound 0.05" in note
