"""Issue 13, evaluation item: the labels' range check of probabilities read by the fused
pass is deferred to that pass (per block, on the worker threads) instead of two serial
reductions over every label before it; a bad label still gives the same error, naming
its row, from every public function and on both backends, wherever its block."""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent.calibration._inputs import as_predictions


def _data(rows: int = 150_000, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(classes), size=rows).astype(np.float32)
    return probs, rng.integers(0, classes, size=rows)


_METRICS = {
    "nll": lambda p, y: crossent.negative_log_likelihood(p, y),
    "nll none": lambda p, y: crossent.negative_log_likelihood(p, y, reduction="none"),
    "brier": lambda p, y: crossent.brier_score(p, y),
    "accuracy": lambda p, y: crossent.accuracy(p, y),
    "ece": lambda p, y: crossent.calibration_error(p, y),
    "ece quantile": lambda p, y: crossent.calibration_error(p, y, binning="quantile"),
    "ece class-wise": lambda p, y: crossent.calibration_error(p, y, scope="class-wise"),
    "state": lambda p, y: crossent.EvaluationState(10).update(p, y),
    "state quantile": lambda p, y: crossent.EvaluationState(10, binning="quantile").update(p, y),
}


@pytest.mark.parametrize("metric", list(_METRICS))
@pytest.mark.parametrize(("row", "value"), [(0, -1), (149_999, 10), (120_000, -3)])
def test_issue13_deferred_label_check_names_the_row(
    row_backend: str, metric: str, row: int, value: int
) -> None:
    probs, labels = _data()
    labels[row] = value
    with pytest.raises(
        crossent.InputError,
        match=rf"`labels` must be integers in \[0, 10\).*row {row} has {value}\)",
    ):
        _METRICS[metric](probs, labels)


def test_issue13_deferred_label_check_counts_rows_from_first_row(row_backend: str) -> None:
    probs, labels = _data(2000)
    labels[1500] = 11
    state = crossent.EvaluationState(10)
    with pytest.raises(crossent.InputError, match=r"row 5500 has 11\)"):
        state.update(probs, labels, first_row=4000)


def test_issue13_labels_are_checked_in_the_fused_pass_not_before() -> None:
    """as_predictions(defer=True) leaves the range to the fused pass (no serial pass over
    the labels); without deferral it checks them at once, as before."""
    probs, labels = _data(100)
    labels[7] = -1
    predictions = as_predictions(probs, labels, form="probs", defer=True)
    assert predictions.pending
    with pytest.raises(crossent.InputError, match=r"row 7 has -1\)"):
        as_predictions(probs, labels, form="probs")
    with pytest.raises(crossent.InputError, match=r"row 7 has -1\)"):
        predictions.check_values()
