"""Hostile API pass 2: a yes/no option that is not a bool is an InputTypeError everywhere.

``validate=1`` raised :class:`crossent.InputTypeError` (a ``TypeError``), as did
``report(renormalize=1)``, but ``renormalize=1`` of the scores, ``debias=1`` of
``calibration_error`` (and of ``report``, ``bootstrap_interval`` and
``EvaluationState.compute``, which share its check) and ``TemperatureScaling(guard=1)``
raised :class:`crossent.InputError` (a ``ValueError``), so one ``except TypeError``
caught some flags and not others; a NumPy bool, which ``validate`` takes, was refused.
The type errors fail on main; the NumPy-bool cases fail on main too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent

_PROBS = np.array([[0.25, 0.75], [0.5, 0.5], [0.9, 0.1], [0.3, 0.7]] * 3)
_LABELS = np.array([1, 0, 0, 1, 0, 0, 1, 1, 1, 0, 0, 1])  # guard=True: 5 folds of rows


def _state_compute(**options: Any) -> Any:
    state = crossent.EvaluationState(classes=2)
    state.update(_PROBS, _LABELS)
    return state.compute(**options)


def _fit(**options: Any) -> Any:
    fitted = crossent.TemperatureScaling(**options).fit(np.log(_PROBS), _LABELS, form="logits")
    return fitted.temperature_


_CALLS: list[tuple[str, str, Callable[..., Any]]] = [
    ("calibration_error", "debias", lambda **o: crossent.calibration_error(_PROBS, _LABELS, **o)),
    (
        "calibration_error",
        "renormalize",
        lambda **o: crossent.calibration_error(_PROBS, _LABELS, **o),
    ),
    ("brier_score", "renormalize", lambda **o: crossent.brier_score(_PROBS, _LABELS, **o)),
    (
        "bootstrap_interval",
        "debias",
        lambda **o: crossent.bootstrap_interval(
            "calibration_error", _PROBS, _LABELS, resamples=3, **o
        ),
    ),
    ("report", "debias", lambda **o: crossent.report(_PROBS, _LABELS, resamples=3, **o)),
    ("EvaluationState.compute", "debias", _state_compute),
    ("TemperatureScaling", "guard", _fit),
]


@pytest.mark.parametrize("value", [1, 0, "no", None, 1.0])
@pytest.mark.parametrize(("where", "flag", "call"), _CALLS, ids=[f"{w}-{f}" for w, f, _ in _CALLS])
def test_a_flag_that_is_not_a_bool_is_a_type_error(
    where: str, flag: str, call: Callable[..., Any], value: object
) -> None:
    if value is None and where in ("report", "bootstrap_interval"):
        pytest.skip("debias=None: the preset's or metric's default there")
    with pytest.raises(crossent.InputTypeError, match=rf"`{flag}` must be True or False"):
        call(**{flag: value})


@pytest.mark.parametrize(("where", "flag", "call"), _CALLS, ids=[f"{w}-{f}" for w, f, _ in _CALLS])
def test_a_numpy_bool_is_taken_as_validate_takes_it(
    where: str, flag: str, call: Callable[..., Any]
) -> None:
    options = {"norm": "l2"} if flag == "debias" else {}  # debias=True needs the L2 norm
    for value in (False, True):
        plain = call(**options, **{flag: value})
        numpy_bool = call(**options, **{flag: np.bool_(value)})
        assert repr(numpy_bool) == repr(plain), (where, flag, value)
