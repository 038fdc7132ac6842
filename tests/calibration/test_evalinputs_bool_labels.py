"""Boolean labels in the evaluation API: the classes 0 (False) and 1 (True) of a binary
problem, as ``crossent report`` reads a boolean label column or ``.npz`` array.

On main every evaluation function refused them ("Cast booleans to integers first"),
while the CLI converted the same array; with more than two classes they are still
refused, and the message now says what to write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent

_RNG = np.random.default_rng(20261204)
_P1 = _RNG.uniform(0.02, 0.98, size=40)
_HIT = _RNG.uniform(size=40) < _P1
_TWO = np.stack([1.0 - _P1, _P1], axis=1)
_LOGODDS = np.log(_P1) - np.log1p(-_P1)


def _nll_oracle(p1: np.ndarray, y: np.ndarray) -> float:
    """-mean log p_y in float64, written out: log p where y is True, log(1 - p) where not."""
    return float(-np.mean(np.where(y, np.log(p1), np.log1p(-p1))))


@pytest.mark.parametrize(
    ("values", "form"), [(_P1, "probs"), (_TWO, "probs"), (_LOGODDS, "logits")]
)
def test_negative_log_likelihood_of_boolean_labels(values: np.ndarray, form: str) -> None:
    got = crossent.negative_log_likelihood(values, _HIT, form=form)
    assert got == pytest.approx(_nll_oracle(_P1, _HIT), rel=1e-12)


_FUNCTIONS: list[Callable[..., Any]] = [
    lambda v, y: crossent.brier_score(v, y),
    lambda v, y: crossent.accuracy(v, y),
    lambda v, y: crossent.spherical_score(v, y),
    lambda v, y: crossent.calibration_error(v, y).value,
    lambda v, y: crossent.calibration_error(v, y, scope="class-wise", norm="l2").value,
    lambda v, y: crossent.smooth_calibration_error(v, y).value,
    lambda v, y: crossent.EvaluationState(2).update(v, y).compute().nll,
    lambda v, y: crossent.EvaluationState(2).update(v, y).compute().calibration.value,
]


@pytest.mark.parametrize("values", [_P1, _TWO], ids=["one-column", "two-columns"])
@pytest.mark.parametrize("function", _FUNCTIONS)
def test_boolean_labels_are_classes_0_and_1(
    function: Callable[..., Any], values: np.ndarray
) -> None:
    assert function(values, _HIT) == function(values, _HIT.astype(np.int64))


def test_report_of_boolean_labels() -> None:
    as_bool = crossent.report(_P1, _HIT, resamples=20).to_dict()
    as_int = crossent.report(_P1, _HIT.astype(np.int64), resamples=20).to_dict()
    assert as_bool == as_int
    assert as_bool["nll_nats"] == pytest.approx(_nll_oracle(_P1, _HIT), rel=1e-12)


def test_boolean_tensor_labels() -> None:
    torch = pytest.importorskip("torch")
    got = crossent.negative_log_likelihood(torch.tensor(_TWO), torch.tensor(_HIT))
    assert got == pytest.approx(_nll_oracle(_P1, _HIT), rel=1e-12)


def test_boolean_labels_of_the_wrong_length() -> None:
    with pytest.raises(crossent.InputError, match=r"\(40,\).*got \(39,\)"):
        crossent.negative_log_likelihood(_P1, _HIT[:-1])


@pytest.mark.parametrize("classes", [1, 3])
def test_boolean_labels_of_more_classes_say_what_to_write(classes: int) -> None:
    probs = np.full((4, classes), 1.0 / classes)
    labels = np.array([False, True, False, False])
    with pytest.raises(
        crossent.InputTypeError,
        match=rf"booleans.*have {classes} class.*pass labels\.astype\(np\.int64\)",
    ):
        crossent.negative_log_likelihood(probs, labels)
    with pytest.raises(crossent.InputTypeError, match=r"labels\.astype\(np\.int64\)"):
        crossent.EvaluationState(classes).update(probs, labels)


def test_a_loss_refuses_boolean_labels_saying_what_to_write() -> None:
    """Training losses take integer ids, as ``F.cross_entropy`` does; the message gives
    the expression to write, not "cast booleans to integers"."""
    with pytest.raises(crossent.InputTypeError, match=r"Pass labels\.astype\(np\.int64\)"):
        crossent.softmax_cross_entropy(np.zeros((2, 2)), np.array([False, True]))
