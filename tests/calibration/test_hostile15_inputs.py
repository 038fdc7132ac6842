"""Hostile inputs of the evaluation functions (hostile15, issue 13).

One-dimensional log-odds of a binary problem at +-inf and NaN:
A 1-D ``form="logits"`` array is the log-odds :math:`z` of class 1; :math:`z = -\\infty`
is probability 0 and :math:`z = +\\infty` probability 1, as ``sigmoid_cross_entropy``
reads them.  ``+inf`` was refused with the index ``(row, 1)`` of a two-column matrix the
caller never passed (and gave NaN with ``validate=False``); a NaN was named at that
column too, and without ``first_row``'s offset.  The oracle is the same rows given as
probabilities (``sigmoid(z)`` written out: 0, 1, 1/2).

``HistogramBinning`` with more bins over all classes than the class-wise scope keeps.
"""

import numpy as np
import pytest

import crossent

Z = np.array([-np.inf, np.inf, 0.0, np.inf, -np.inf])
P = np.array([0.0, 1.0, 0.5, 1.0, 0.0])  # sigmoid(Z), exactly
Y = np.array([0, 1, 1, 0, 1])  # the last two: certain and wrong


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize(
    "score", ["negative_log_likelihood", "brier_score", "spherical_score", "accuracy"]
)
def test_infinite_log_odds_are_probabilities_0_and_1(score, validate):
    function = getattr(crossent, score)
    got = function(Z, Y, form="logits", reduction="none", validate=validate)
    np.testing.assert_array_equal(got, function(P, Y, reduction="none"))


@pytest.mark.parametrize("validate", [True, False])
def test_infinite_log_odds_in_calibration_and_state(validate):
    ece = crossent.calibration_error(Z, Y, form="logits", bins=4, validate=validate)
    # top-label confidences 1, 1, 1/2, 1, 1 with hits 1, 1, 0, 0, 0: (4 * 0.5 + 0.5) / 5
    assert ece.value == crossent.calibration_error(P, Y, bins=4).value == 0.5
    state = crossent.EvaluationState(2, bins=4).update(Z, Y, form="logits", validate=validate)
    assert state.compute().nll == np.inf  # rows 3 and 4: probability 0 for the label
    finite = crossent.EvaluationState(2).update(Z[:3], Y[:3], form="logits").compute()
    assert finite.nll == pytest.approx(np.log(2) / 3, rel=1e-15)
    assert finite.brier == pytest.approx(0.5 / 3, rel=1e-15)


def test_temperature_transform_keeps_a_certain_row():
    scaler = crossent.TemperatureScaling(guard=False).fit(
        np.array([-2.0, 1.0, 3.0, -0.5]), np.array([0, 1, 0, 1])
    )
    out = scaler.transform(np.array([np.inf, -np.inf]))
    np.testing.assert_array_equal(out, [[0.0, 1.0], [1.0, 0.0]])


@pytest.mark.parametrize(
    ("form", "value", "message"),
    [
        ("logits", np.nan, "`logits` contains NaN at index 301$"),
        ("probs", 1.5, "got 1.5 at index 301[.]"),
    ],
)
def test_a_bad_entry_named_at_its_own_row(form, value, message):
    state = crossent.EvaluationState(2)
    with pytest.raises(crossent.InputError, match=message):
        state.update(np.array([0.25, value]), np.array([0, 1]), form=form, first_row=300)


def test_histogram_binning_refuses_more_class_bins_than_the_class_wise_scope():
    """``bins`` times classes past 2**24 (the class-wise scope's bound) is refused, not
    allocated: 2**20 bins of 10**4 classes asked for 80 GiB of hit rates."""
    probs = np.full((1, 17), 1 / 17)  # 17 * 2**20 cells: just past the bound
    with pytest.raises(crossent.InputError, match=r"17825792 in all, more than 16777216"):
        crossent.HistogramBinning(bins=2**20).fit(probs, [0])


def test_a_state_of_more_classes_than_memory_names_classes():
    """``EvaluationState(2**60)`` ended in NumPy's ``ValueError`` ("array is too big"),
    and ``2**40`` in its ``MemoryError`` ("Unable to allocate 8.00 TiB"; not tested: an
    overcommitting system may map it), no argument named; ``classes`` is named now."""
    message = r"^`classes` is too large: .* each of 1152921504606846976 classes"
    with pytest.raises(crossent.InputError, match=message):
        crossent.EvaluationState(2**60)
