"""Issue 13, "Small inputs": the per-call shortcuts keep every check and every value.

The option checks are cached by value and type, the public softmax losses are bodies
over their prepare step (issue 11), and the NumPy primitives take shortcuts; these
tests pin that nothing a caller can see changed.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent.errors import InputError
from crossent.losses._batch import loss_options

LOGITS = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
LABELS = np.array([0, 2])


def test_issue13_small_inputs_cached_options_still_reject_a_bool() -> None:
    assert loss_options(temperature=1.0).temperature == 1.0  # cached for 1.0
    with pytest.raises(InputError, match="`temperature` must be a real number; got True"):
        loss_options(temperature=True)
    with pytest.raises(InputError, match="`label_smoothing` must be a real number"):
        crossent.softmax_cross_entropy(LOGITS, LABELS, label_smoothing=True)


def test_issue13_small_inputs_unhashable_option_gets_the_usual_error() -> None:
    with pytest.raises(InputError, match="`z_loss` must be a real number"):
        crossent.softmax_cross_entropy(LOGITS, LABELS, z_loss=np.array([0.1]))


def test_issue13_small_inputs_cached_options_are_the_checked_ones() -> None:
    first = loss_options(label_smoothing=0.1, base=2)
    again = loss_options(label_smoothing=0.1, base=2)
    assert first == again
    assert first.log_base == pytest.approx(np.log(2.0))
    with pytest.raises(InputError, match="`base`"):
        loss_options(base=1)


def test_issue13_small_inputs_public_loss_takes_no_fused_keyword() -> None:
    with pytest.raises(TypeError, match="'fused'"):
        crossent.softmax_cross_entropy(LOGITS, LABELS, fused=False)
    with pytest.raises(TypeError, match="'fused'"):
        crossent.softmax_cross_entropy_grad(LOGITS, LABELS, fused=False)


def test_issue13_small_inputs_gradient_writes_into_out() -> None:
    out = np.empty_like(LOGITS)
    result = crossent.softmax_cross_entropy_grad(LOGITS, LABELS, out=out)
    assert result is out
    np.testing.assert_array_equal(out, crossent.softmax_cross_entropy_grad(LOGITS, LABELS))
