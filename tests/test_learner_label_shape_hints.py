"""Labels of the wrong shape: the two shapes a learner passes by mistake get the fix.

One-hot labels (the targets' shape, ``(N, C)`` where ``(N,)`` belongs) and classes on
another axis than the default last one (logits ``(C, N)`` with ``axis`` left at -1) were
told only that the shapes differ; the message now says what to pass instead.  A shape
that is neither keeps the plain message.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent

LOGITS = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])  # 2 examples, 3 classes
LABELS = np.array([0, 2])
ONE_HOT = np.eye(3, dtype=np.int64)[LABELS]

LOSSES = [
    crossent.softmax_cross_entropy,
    crossent.softmax_cross_entropy_grad,
    crossent.softmax_focal_loss,
    crossent.multiclass_hinge_loss,
]


@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
def test_learner_one_hot_labels_name_argmax_and_the_targets_variant(loss: object) -> None:
    with pytest.raises(crossent.InputError) as info:
        loss(LOGITS, ONE_HOT)  # type: ignore[operator]
    message = str(info.value)
    assert "got (2, 3)" in message
    assert "one-hot" in message.lower()
    assert "labels.argmax(axis=-1)" in message
    # The fix the message names gives the loss of the integer labels.
    fixed = loss(LOGITS, ONE_HOT.argmax(axis=-1))  # type: ignore[operator]
    np.testing.assert_array_equal(fixed, loss(LOGITS, LABELS))  # type: ignore[operator]


def test_learner_one_hot_labels_name_the_with_targets_variant() -> None:
    with pytest.raises(crossent.InputError, match="softmax_cross_entropy_with_targets"):
        crossent.softmax_cross_entropy(LOGITS, ONE_HOT)
    targets = ONE_HOT.astype(np.float64)
    assert crossent.softmax_cross_entropy_with_targets(
        LOGITS, targets
    ) == crossent.softmax_cross_entropy(LOGITS, LABELS)


@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
def test_learner_classes_on_the_first_axis_name_axis(loss: object) -> None:
    with pytest.raises(crossent.InputError) as info:
        loss(LOGITS.T, LABELS)  # type: ignore[operator]
    message = str(info.value)
    assert "got (2,)" in message
    assert "axis=" in message
    fixed = loss(LOGITS.T, LABELS, axis=0)  # type: ignore[operator]
    np.testing.assert_allclose(fixed, loss(LOGITS, LABELS).T, rtol=1e-15)  # type: ignore[operator]


def test_learner_other_wrong_shapes_keep_the_plain_message() -> None:
    with pytest.raises(crossent.InputError) as info:
        crossent.softmax_cross_entropy(LOGITS, np.array([0, 2, 1, 1, 0]))
    message = str(info.value)
    assert message == (
        "`labels` must have the batch shape of `logits` (2,) (the class axis removed); got (5,)"
    )


def test_learner_evaluation_one_hot_labels_name_argmax() -> None:
    probs = np.exp(LOGITS) / np.exp(LOGITS).sum(axis=1, keepdims=True)
    for call in (crossent.negative_log_likelihood, crossent.accuracy):
        with pytest.raises(crossent.InputError) as info:
            call(probs, ONE_HOT)
        message = str(info.value)
        assert "got shape (2, 3)" in message
        assert "labels.argmax(axis=1)" in message
    assert crossent.negative_log_likelihood(
        probs, ONE_HOT.argmax(axis=1)
    ) == crossent.negative_log_likelihood(probs, LABELS)
