"""Issue 13 (a hostile pass): one rule for boolean labels, whatever holds them.

The training losses take integer class ids only (``docs/changelog.md``: "The training
losses keep taking integer ids only, as ``F.cross_entropy`` does"), and refused a NumPy,
PyTorch or JAX bool array naming ``labels.astype(np.int64)``; but a Python list of
bools was converted to int8 on the way in and read as the classes 0 and 1:
``softmax_cross_entropy(logits, [True, False, True, False])`` gave a loss. Now the list
is refused as the arrays are. The evaluation API reads boolean labels of a binary
problem as the classes 0 and 1 from any of them, and the binary losses' ``targets``
(probabilities, where 0/1 as False/True are values, not ids) take them from any of
them: both already one rule, guarded here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.errors import InputTypeError

torch = pytest.importorskip("torch")
jnp = pytest.importorskip("jax.numpy")

FLAGS = [True, False, True, False]
LOGITS = np.array([[0.3, -1.2], [2.0, 0.5], [-0.7, 0.1], [1.1, 1.4]])

LOSSES: dict[str, Callable[..., Any]] = {
    name: getattr(crossent, name)
    for name in (
        "softmax_cross_entropy",
        "softmax_cross_entropy_grad",
        "softmax_focal_loss",
        "softmax_focal_loss_grad",
        "multiclass_hinge_loss",
        "multiclass_hinge_loss_grad",
        "poly1_cross_entropy",
        "poly1_cross_entropy_grad",
    )
}
"""Every public loss of class ids (``labels``) in ``crossent``."""

HOLDERS: dict[str, Callable[[], tuple[Any, Any]]] = {
    "list": lambda: (LOGITS, list(FLAGS)),
    "numpy-bool-scalars": lambda: (LOGITS, [np.bool_(f) for f in FLAGS]),
    "tuple": lambda: (LOGITS, tuple(FLAGS)),
    "numpy": lambda: (LOGITS, np.array(FLAGS)),
    "torch": lambda: (torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(FLAGS)),
    "jax": lambda: (jnp.asarray(LOGITS, dtype=jnp.float32), jnp.asarray(FLAGS)),
}


def test_every_public_label_loss_is_covered() -> None:
    """Each function of ``crossent.__all__`` taking ``labels`` whose name says loss."""
    import inspect

    taking = {
        name
        for name in crossent.__all__
        if callable(getattr(crossent, name))
        and not inspect.isclass(getattr(crossent, name))
        and "labels" in inspect.signature(getattr(crossent, name)).parameters
        and ("loss" in name or "cross_entropy" in name)
        and name not in ("negative_log_likelihood", "compare_log_loss")
    }
    assert taking == set(LOSSES)


@pytest.mark.parametrize("holder", sorted(HOLDERS))
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_refuse_boolean_class_ids_in_any_holder(name: str, holder: str) -> None:
    logits, labels = HOLDERS[holder]()
    with pytest.raises(InputTypeError, match=r"integer class ids.*astype\(np\.int64\)"):
        LOSSES[name](logits, labels)


@pytest.mark.parametrize("holder", sorted(HOLDERS))
def test_evaluation_reads_boolean_labels_of_a_binary_problem_alike(holder: str) -> None:
    """The evaluation API: classes 0 (False) and 1 (True), from every holder."""
    probs = np.array([[0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.9, 0.1]])
    _, labels = HOLDERS[holder]()
    want = crossent.negative_log_likelihood(probs, np.array(FLAGS, dtype=np.int64))
    assert crossent.negative_log_likelihood(probs, labels) == want


@pytest.mark.parametrize("holder", sorted(HOLDERS))
def test_binary_targets_take_booleans_as_probabilities_alike(holder: str) -> None:
    """``targets`` of the sigmoid losses are probabilities: True is 1.0, from every holder."""
    logits, flags = HOLDERS[holder]()
    column = logits[:, 0]
    want = crossent.sigmoid_cross_entropy(
        LOGITS[:, 0], np.array(FLAGS, dtype=np.float64), reduction="none"
    )
    got = crossent.sigmoid_cross_entropy(column, flags, reduction="none")
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=1e-6)
