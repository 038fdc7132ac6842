"""Eighth hostile pass over the evaluation API (issue 13, branch hostileeval8)."""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent.calibration import _binning


@pytest.mark.parametrize("closed", ["left", "right"])
def test_fine_cells_hold_their_edges_as_declared(closed: str) -> None:
    # The streaming equal-mass bins are groups of fine cells whose edges the state
    # declares: each confidence must be in the cell those edges give (numpy's search),
    # also on an edge and an ulp either side of one (the logit's rounding put 761 of
    # the 4097 inner edges in the cell on their other side with closed="left").
    edges = _binning.fine_edges()
    near = [edges, np.nextafter(edges, 0.0), np.nextafter(edges, 1.0)]
    c = np.concatenate([*near, np.random.default_rng(0).random(2000), [-0.5, 1.5, np.nan]])
    expected = _binning.assign_bins(c, edges, closed)  # type: ignore[arg-type]
    np.testing.assert_array_equal(_binning.fine_cell(c, closed), expected)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="read-only"):  # computed once: no caller may edit them
        edges[1] = 0.5


def test_streaming_equal_mass_bin_holds_the_rows_on_its_edge() -> None:
    # Four rows inside fine cell 2388 and four on its upper edge E (cell 2389's lower
    # edge): two equal-mass bins are [0, E) and [E, 1], four rows each, and the error is
    # that of those bins (the one-shot function's, whose edge is a quantile between
    # them).  The state counted the rows on E in cell 2388: one bin of eight, 0.1843.
    edges = _binning.fine_edges()
    on_edge, inside = edges[2389], (edges[2388] + edges[2389]) / 2
    c = np.array([inside] * 4 + [on_edge] * 4)
    labels = np.array([0, 1, 0, 1, 1, 1, 1, 1])
    probs = np.stack([1.0 - c, c], axis=1)
    options = {"scope": "positive-class", "binning": "quantile", "bins": 2}
    state = crossent.EvaluationState(2, **options).update(probs, labels, validate=False)
    result = state.calibration()
    np.testing.assert_array_equal(result.edges, [0.0, on_edge, 1.0])
    np.testing.assert_array_equal(result.statistics.count, [4.0, 4.0])
    expected = 0.5 * abs(0.5 - inside) + 0.5 * abs(1.0 - on_edge)
    assert result.value == pytest.approx(expected, rel=1e-15)
    one_shot = crossent.calibration_error(probs, labels, validate=False, **options)
    assert result.value == pytest.approx(one_shot.value, rel=1e-15)


@pytest.mark.parametrize("scope", ["top-label", "class-wise"])
def test_streaming_equal_mass_bins_take_unchecked_nan_rows(scope: str) -> None:
    # validate=False with a NaN row: the equal-width state and the one-shot functions
    # give a NaN error with the row counted in the last bin; the equal-mass state raised
    # NumPy's ValueError ("'list' argument must have no negative elements").
    probs = np.array([[0.3, 0.7], [np.nan, np.nan], [0.6, 0.4]])
    labels = np.array([0, 1, 0])
    state = crossent.EvaluationState(2, binning="quantile", bins=3, scope=scope)
    result = state.update(probs, labels, validate=False).calibration()
    one_shot = crossent.calibration_error(
        probs, labels, binning="quantile", bins=3, scope=scope, validate=False
    )
    assert np.isnan(result.value)
    assert np.isnan(one_shot.value)
    count = np.atleast_2d(result.statistics.count)  # (curves, bins)
    np.testing.assert_array_equal(count.sum(axis=1), 3.0)
    assert np.all(count[:, -1] >= 1)  # the NaN row: in the last bin


@pytest.mark.parametrize("base", [2.0, 10.0])
def test_intervals_in_a_base_give_the_functions_values(base: float) -> None:
    # Interval.value is "the metric on the data as given": negative_log_likelihood's
    # number in that base, as nll_a and nll_b of compare_log_loss.  Each row was divided
    # by log(base) before the mean, where the function divides the mean: 1 ulp off
    # (2.9374889609284933 bits for 2.9374889609284938 here).
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(100, 3)) * 2, rng.integers(0, 3, 100)
    options = {"base": base, "resamples": 20}
    nll_a = crossent.negative_log_likelihood(logits, labels, form="logits", base=base)
    nll_b = crossent.negative_log_likelihood(logits / 2, labels, form="logits", base=base)
    interval = crossent.bootstrap_interval("nll", logits, labels, form="logits", **options)
    compared = crossent.compare_log_loss(
        logits, logits / 2, labels, form_a="logits", form_b="logits", **options
    )
    assert (interval.value, compared.nll_a, compared.nll_b) == (nll_a, nll_a, nll_b)
    in_nats = crossent.bootstrap_interval("nll", logits, labels, form="logits", resamples=20)
    assert interval.low == pytest.approx(in_nats.low / np.log(base), rel=1e-15)
    assert interval.high == pytest.approx(in_nats.high / np.log(base), rel=1e-15)
    nats = crossent.compare_log_loss(
        logits, logits / 2, labels, form_a="logits", form_b="logits", resamples=20
    )
    assert compared.difference == pytest.approx(nats.difference / np.log(base), rel=1e-15)
    assert compared.low == pytest.approx(nats.low / np.log(base), rel=1e-15)
    assert compared.high == pytest.approx(nats.high / np.log(base), rel=1e-15)
