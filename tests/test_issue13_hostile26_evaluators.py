"""Issue 13, hostile pass 26: the evaluators read a ragged list as the losses do.

On main (d6e53ad7) a list whose rows differ in length, given to the evaluation functions
(``negative_log_likelihood``, ``brier_score``, ``calibration_error``,
``smooth_calibration_error``, ``TemperatureScaling.fit``) as the predictions, ended in
NumPy's bare ``ValueError`` ("setting an array element with a sequence. The requested
array has an inhomogeneous shape ..."), naming no argument; as the labels, or either
to ``crossent.report``, it was "`labels` (list) could not be read as a host array; move
it to the CPU first", advice for a device array about a list on the host.  The losses
said "`p` must be array-like; got list whose rows differ in length: row 1 has 1 entry,
row 0 has 2 entries"; every function now reads a list through ``_xp.sequence_array``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import crossent
from crossent import InputTypeError

_EVALUATORS: dict[str, tuple[str, Callable[[Any, Any], Any]]] = {
    "negative_log_likelihood": ("probs", crossent.negative_log_likelihood),
    "brier_score": ("probs", crossent.brier_score),
    "calibration_error": ("probs", crossent.calibration_error),
    "smooth_calibration_error": ("probs", crossent.smooth_calibration_error),
    "TemperatureScaling.fit": ("logits", lambda a, b: crossent.TemperatureScaling().fit(a, b)),
    "report": ("predictions", lambda a, b: crossent.report(a, b, resamples=10)),
}


@pytest.mark.parametrize("function", list(_EVALUATORS))
def test_ragged_predictions_are_named_with_their_rows(function: str) -> None:
    name, call = _EVALUATORS[function]
    with pytest.raises(InputTypeError) as info:
        call([[0.5, 0.5], [1.0]], [0, 0])
    assert str(info.value) == (
        f"`{name}` must be array-like; got list whose rows differ in length: row 1 has 1 "
        "entry, row 0 has 2 entries"
    )


@pytest.mark.parametrize("function", list(_EVALUATORS))
def test_ragged_labels_are_named_with_their_rows(function: str) -> None:
    call = _EVALUATORS[function][1]
    with pytest.raises(InputTypeError) as info:
        call([[0.5, 0.5], [0.5, 0.5]], [[0], [1, 1]])
    assert str(info.value) == (
        "`labels` must be array-like; got list whose rows differ in length: row 1 has 2 "
        "entries, row 0 has 1 entry"
    )
