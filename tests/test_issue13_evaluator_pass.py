"""Issue 13, an evaluator's pass: the class-wise bins of a wide vocabulary.

``crossent.report`` keeps a class-wise state for its per-class table; it binned one class
at a time, a Python loop of ``classes`` calls per block of rows: 10^4 x 50 000 float32
logits took more than 15 minutes.  The oracle is each class's own bins, computed here with
``numpy.searchsorted`` and ``numpy.bincount``, column by column.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent.calibration import _state


def _column_bins(probs: np.ndarray, labels: np.ndarray, bins: int) -> tuple[np.ndarray, ...]:
    """Each class's uniform bins [a, b) (the last closed), one column at a time."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    count, confidence, hits = (np.zeros((probs.shape[1], bins)) for _ in range(3))
    for k in range(probs.shape[1]):
        p = probs[:, k].astype(np.float64)
        index = np.searchsorted(edges[1:-1], p, side="right")
        count[k] = np.bincount(index, minlength=bins)
        confidence[k] = np.bincount(index, weights=p, minlength=bins)
        hits[k] = np.bincount(index, weights=(labels == k).astype(np.float64), minlength=bins)
    return count, confidence, hits


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_class_wise_bins_are_each_columns_bins(dtype: type) -> None:
    rng = np.random.default_rng(0)
    n, classes, bins = 3000, 37, 15
    logits = rng.normal(size=(n, classes)) * 3
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(dtype)
    probs /= probs.sum(axis=1, keepdims=True, dtype=dtype)
    probs[0, :] = 0
    probs[0, 3] = 1  # an edge value, in the last bin
    labels = rng.integers(0, classes - 1, size=n)  # the last class never occurs
    state = crossent.EvaluationState(classes, bins=bins, scope="class-wise")
    state.update(probs, labels)
    stats = state.calibration().statistics
    count, confidence, hits = _column_bins(probs, labels, bins)
    np.testing.assert_array_equal(stats.count, count)
    np.testing.assert_array_equal(stats.hits, hits)
    np.testing.assert_allclose(stats.confidence_sum, confidence, rtol=1e-13, atol=0)
    one_shot = crossent.calibration_error(probs, labels, bins=bins, scope="class-wise")
    assert state.calibration().value == pytest.approx(float(one_shot), rel=1e-13)


def test_class_wise_bins_a_block_in_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """One binning call per block, not one per class."""
    calls = []
    original = _state.assign_uniform_bins

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(_state, "assign_uniform_bins", counted)
    rng = np.random.default_rng(1)
    classes = 500
    probs = rng.dirichlet(np.ones(classes), size=64)
    state = crossent.EvaluationState(classes, scope="class-wise")
    state.update(probs, rng.integers(0, classes, size=64))
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("labels", "hint"),
    [
        (np.array(["no", "yes", "yes"]), "class_names="),
        (np.array(["no", "yes", "yes"], dtype=object), "class_names="),
    ],
)
def test_labels_that_are_not_ids_get_the_fix_for_their_kind(labels: np.ndarray, hint: str) -> None:
    """Class names were told to "cast whole-number floats" (booleans of a binary problem
    are classes 0 and 1: tests/calibration/test_evalinputs_bool_labels.py); the report
    reads them by name given ``class_names`` (tests/test_real_model_outputs.py), which
    its message says to pass."""
    with pytest.raises(crossent.InputTypeError, match=hint):
        crossent.report(np.array([0.3, 0.6, 0.9]), labels, resamples=10)


@pytest.mark.parametrize(
    ("form", "given"),
    [
        ("probs", "given as P(label = 1):"),
        ("logits", "given as the log-odds of class 1:"),
    ],
)
def test_binary_note_names_the_form_of_the_column(form: str, given: str) -> None:
    """The report's note on a one-column binary input says what the column holds (it
    said P(label = 1) for a column of logits too)."""
    p = np.array([0.9, 0.2, 0.7, 0.4, 0.6, 0.1])
    labels = np.array([1, 0, 1, 1, 0, 0])
    column = p if form == "probs" else np.log(p) - np.log1p(-p)
    notes = crossent.report(column, labels, form=form, resamples=10).to_dict()["notes"]
    binary = [note for note in notes if note.startswith("binary predictions")]
    assert len(binary) == 1
    assert given in binary[0]
