"""What every calibrator shares: log-scores, the predictions to transform, the output form.

A calibrator maps each prediction to log-scores whose softmax is the prediction (the
logits as given, else the log-probabilities), transforms them, and returns a
normalised distribution as probabilities or log-probabilities.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._checks import check_choice
from .._numerics import safe_log
from .._xp import log_softmax
from ..errors import InputError
from ._inputs import FloatArray, Predictions, as_predictions

__all__ = [
    "all_log_scores",
    "as_output",
    "check_classes",
    "check_fitted",
    "log_scores",
    "unlabelled",
]


def log_scores(values: FloatArray, form: str) -> FloatArray:
    """Float64 log-scores whose softmax is the prediction: logits as given, else log-probs."""
    return safe_log(values, xp=np) if form == "probs" else values


def all_log_scores(predictions: Predictions) -> FloatArray:
    """The log-scores of every row, in float64."""
    return log_scores(np.asarray(predictions.values, dtype=np.float64), predictions.form)


def unlabelled(values: Any, form: str) -> Predictions:
    """Validated predictions to transform (they have no labels: placeholders of 0)."""
    count = int(np.shape(values)[0]) if np.ndim(values) else 0
    return as_predictions(values, np.zeros(count, np.intp), form=form)


def as_output(scores: FloatArray, output: str) -> FloatArray:
    """The distributions ``softmax(scores)`` as ``output``: 'probs' or 'log_probs'."""
    check_choice(output, ("probs", "log_probs"), name="output")
    log_probs = log_softmax(scores, xp=np)
    return np.exp(log_probs) if output == "probs" else log_probs


def check_fitted(calibrator: object, attribute: str) -> None:
    """Refuse to transform with a calibrator that has not been fitted."""
    if not hasattr(calibrator, attribute):
        raise InputError(f"this {type(calibrator).__name__} is not fitted yet; call fit() first")


def check_classes(predictions: Predictions, fitted: int, values: Any = None) -> None:
    """Refuse predictions whose class count is not the one the calibrator was fitted on
    (a learned per-class parameter, or Platt's two classes, would be misapplied, and a
    temperature fitted on 3 classes turned one row of shape ``(3,)`` into three binary
    rows); ``values``, the caller's, adds how a 1-D array was read."""
    if predictions.classes != fitted:
        one_row = (
            f" (a 1-D array is {predictions.n} binary predictions of class 1; one row of "
            f"{fitted} classes is shape (1, {fitted}))"
            if values is not None and np.ndim(values) == 1
            else ""
        )
        raise InputError(
            f"`{predictions.name}` has {predictions.classes} classes{one_row}; the "
            f"calibrator was fitted on {fitted}"
        )
