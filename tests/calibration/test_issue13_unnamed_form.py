"""Issue 13, hostile pass 27: a recalibrator never guesses the form of its input.

On main (06736064) ``TemperatureScaling().fit(probs, labels)`` (no ``form``) read the
probabilities as logits (the default) and fitted the softmax of them without a word
(30 rows of 3 classes: T = 20, its bound); so did ``transform``, ``VectorScaling`` and
``recalibration_gap``.  Rows that are all non-negative and sum to 1 given without a form
are refused; ``form='logits'`` named reads them as logits, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.errors import InputError

_RNG = np.random.default_rng(0)
_PROBS = _RNG.dirichlet([1.0, 1.0, 1.0], size=30)
_LABELS = _RNG.integers(0, 3, 30)
_SAID = (
    "`logits` looks like probabilities: every row is non-negative and sums to 1, and no "
    "form was named; pass form='probs' (or form='logits' if these numbers are logits)"
)

_CALLS: dict[str, Callable[[Any], object]] = {
    "fit": lambda p: crossent.TemperatureScaling().fit(p, _LABELS),
    "fit_transform": lambda p: crossent.TemperatureScaling().fit_transform(p, _LABELS),
    "transform": lambda p: (
        crossent.TemperatureScaling().fit(_PROBS, _LABELS, form="probs").transform(p)
    ),
    "gap": lambda p: crossent.recalibration_gap(p, _LABELS),
    "vector": lambda p: crossent.VectorScaling().fit(p, _LABELS),
}


@pytest.mark.parametrize("call", sorted(_CALLS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_probabilities_without_a_form_are_refused(call: str, dtype: type) -> None:
    with pytest.raises(InputError) as caught:
        _CALLS[call](_PROBS.astype(dtype))
    assert str(caught.value) == _SAID


def test_a_named_form_is_read_as_named() -> None:
    named = crossent.TemperatureScaling().fit(_PROBS, _LABELS, form="logits").temperature_
    logits = crossent.TemperatureScaling().fit(_PROBS + 1.0, _LABELS).temperature_
    assert named == pytest.approx(logits, rel=1e-6)  # the same logits up to a shift
