"""Defects found by the issue 10 test work in ``src/crossent/losses/``, fixed there since.

label_smoothing=1 multiplied the label term's weight 1 - eps = 0 by a -inf shifted label
logit (an ignored row's placeholder label 0, or a real label): a RuntimeWarning, which the
suite turns into an error.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent

from tolerances import ulps


@pytest.mark.parametrize("labels", [[0, -100], [0, 0]])
def test_issue10_found_full_smoothing_with_minus_inf_label_logit_is_silent(
    labels: list[int],
) -> None:
    z = np.array([[0.0, 1.0], [-np.inf, 0.0]])
    y = np.array(labels)
    # smoothing 1: uniform targets; row 0 costs log(1 + e) - 1/2, row 1 (if kept) +inf
    expected = math.log1p(math.e) - 0.5 if labels[1] < 0 else math.inf
    got = crossent.softmax_cross_entropy(z, y, ignore_index=-100, label_smoothing=1.0)
    assert got == (
        pytest.approx(expected, rel=ulps(5), abs=0) if math.isfinite(expected) else expected
    )
    grad = crossent.softmax_cross_entropy_grad(z, y, ignore_index=-100, label_smoothing=1.0)
    assert not np.isnan(grad).any()


def test_row_loss_is_zero_on_ignored_rows_with_label_smoothing() -> None:
    # found by the crossent.torch work: the smoothing term stayed on ignored rows of
    # SoftmaxProblem.row_loss(), whose docstring promises 0 there
    from crossent.losses._softmax import prepare_softmax_labels

    z = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    problem = prepare_softmax_labels(
        z, np.array([0, -100]), ignore_index=-100, label_smoothing=0.1, reduction="none"
    )
    per_row = np.asarray(problem.row_loss())
    assert per_row[1] == 0.0
    expected = crossent.softmax_cross_entropy(z[:1], [0], label_smoothing=0.1)
    assert per_row[0] == pytest.approx(float(expected), rel=ulps(4), abs=0)


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize(
    "call",
    [
        lambda z, v: crossent.softmax_cross_entropy(z, [0, 0], validate=v),
        lambda z, v: crossent.softmax_cross_entropy_grad(z, [0, 0], validate=v),
        lambda z, v: crossent.multiclass_hinge_loss(z, [0, 0], validate=v),
        lambda z, v: crossent.distillation_loss(z, z, validate=v),
        lambda z, v: crossent.softmax_focal_loss(z, [0, 0], validate=v),
    ],
)
def test_issue10_item19_zero_classes_in_the_losses_raise_input_error(call, validate) -> None:
    with pytest.raises(crossent.InputError, match="0 classes"):
        call(np.zeros((2, 0)), validate)
