"""Hostile API pass: predictions of a dtype that is not real floating are an InputTypeError.

``crossent.errors`` says a wrong dtype (its example: complex probabilities) is an
:class:`~crossent.InputTypeError` (a ``TypeError``); the measures (``entropy``,
``cross_entropy``) and the losses raise it for integer, boolean, complex, object, string
and datetime arrays (integers and booleans they read as probabilities). The
evaluation API (``negative_log_likelihood``, ``brier_score``,
``calibration_error``, ``EvaluationState.update``, the recalibrators, ``report``, ...)
raised an :class:`~crossent.InputError` (a ``ValueError``) for the same arrays, which an
``except TypeError`` did not catch, and its message named the form twice ("`probs` must
be a real floating array (probs)"). Every case (67) fails on main.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent

_PROBS = np.array([[0.25, 0.75], [0.5, 0.5], [0.9, 0.1]])
_LABELS = np.array([1, 0, 0])

_BAD = {
    "int": np.array([[0, 1], [1, 0], [1, 0]]),
    "bool": np.array([[False, True], [True, False], [True, False]]),
    "complex": _PROBS.astype(np.complex128),
    "object": _PROBS.astype(object),
    "str": _PROBS.astype(str),
    "datetime": np.array([[1, 2], [3, 4], [5, 6]], dtype="M8[s]"),
}

_EVALUATE: dict[str, Callable[[Any], object]] = {
    "nll": lambda x: crossent.negative_log_likelihood(x, _LABELS),
    "accuracy": lambda x: crossent.accuracy(x, _LABELS),
    "brier": lambda x: crossent.brier_score(x, _LABELS),
    "spherical": lambda x: crossent.spherical_score(x, _LABELS),
    "ece": lambda x: crossent.calibration_error(x, _LABELS),
    "smooth": lambda x: crossent.smooth_calibration_error(x, _LABELS),
    "diagram": lambda x: crossent.reliability_diagram(x, _LABELS),
    "bootstrap": lambda x: crossent.bootstrap_interval("nll", x, _LABELS, resamples=3),
    "state": lambda x: crossent.EvaluationState(2).update(x, _LABELS),
    "platt": lambda x: crossent.PlattScaling().fit(x, _LABELS, form="probs"),
    "report": lambda x: crossent.report(x, _LABELS, resamples=3),
}


@pytest.mark.parametrize("dtype", list(_BAD))
@pytest.mark.parametrize("evaluate", list(_EVALUATE))
def test_evaluation_refuses_a_non_floating_dtype_as_a_type_error(evaluate: str, dtype: str) -> None:
    values = _BAD[dtype]
    with pytest.raises(crossent.InputTypeError, match=r"`probs` must be a real floating") as info:
        _EVALUATE[evaluate](values)
    assert "(probs)" not in str(info.value)
    if dtype not in ("int", "bool"):  # the measures take 0/1 integers as probabilities
        with pytest.raises(crossent.InputTypeError):  # their verdict: the same class
            crossent.entropy(values)


def test_a_one_dimensional_binary_column_too() -> None:
    with pytest.raises(crossent.InputTypeError, match=r"`probs` must be a real floating"):
        crossent.calibration_error(np.array([0, 1, 1]), _LABELS)
