"""The hinge margin :math:`\\Delta + (z_c - z_y)` formed difference first (hostile21):
an exact rational oracle (``fractions.Fraction``) of every margin.

Main formed ``(delta + z_c) - z_y`` in the dtype of the scores: against large scores
``delta`` was rounded away before the difference was taken. Float32 ``[1e8, 1e8]``
(label 0, margin 1) gave a loss of 0 and a zero gradient where the loss is 1 and the
subgradient ``[-1, 1]`` (float64 from ``1e17``). Both the small compiled calls (int64
labels) and the full path (int32 labels) are checked. A violation below ``0.75
ulp(delta)`` whose difference is inexact (``[1, 1e-20]`` gave 0 for ``1e-20``):
``test_lossulp1_hinge_kink_exact.py``.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import crossent

_VARIANTS = ["crammer_singer", "weston_watkins"]
_LABELS = [np.int64, np.int32]  # the small compiled calls, the full path


def _rows(dtype: type) -> np.ndarray:
    big = 1e8 if dtype is np.float32 else 1e17
    rows = [
        [big, big, -big],  # a tie of large scores: margin exactly delta
        [big, np.nextafter(dtype(big), dtype(0)), 0.0],  # just below: still violated
        [3.0 * big, 2.0 * big, 3.0 * big],  # large, within a factor of 2: exact
        [1.0, -1e-20, 0.5],  # a margin just below 0 and one of 0.5
        [-big, -big, 3.0],
        [0.75, 0.5, -0.25],  # ordinary scores
    ]
    return np.array(rows, dtype=dtype)


def _exact_loss(z: np.ndarray, y: int, delta: float, variant: str) -> tuple[Fraction, list[int]]:
    """The exact row loss and subgradient of the scores as given (delta as rounded to
    the dtype, as NumPy rounds a Python float against the array)."""
    d = Fraction(float(z.dtype.type(delta)))
    m = [
        d + Fraction(float(c)) - Fraction(float(z[y])) if k != y else None for k, c in enumerate(z)
    ]
    grad = [0] * len(z)
    if variant == "weston_watkins":
        for k, v in enumerate(m):
            if v is not None and v > 0:
                grad[k], grad[y] = 1, grad[y] - 1
        return sum((v for v in m if v is not None and v > 0), Fraction(0)), grad
    r = max((k for k in range(len(z)) if k != y), key=lambda k: (m[k], -k))
    if m[r] > 0:
        grad[r], grad[y] = 1, -1
    return max(m[r], Fraction(0)), grad


@pytest.mark.parametrize("label_type", _LABELS)
@pytest.mark.parametrize("variant", _VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hinge_margins_that_cancel_match_an_exact_oracle(dtype, variant, label_type):
    z = _rows(dtype)
    labels = np.zeros(z.shape[0], dtype=label_type)
    loss = crossent.multiclass_hinge_loss(z, labels, variant=variant, reduction="none")
    grad = crossent.multiclass_hinge_loss_grad(z, labels, variant=variant, reduction="sum")
    for i in range(z.shape[0]):
        want, want_grad = _exact_loss(z[i], 0, 1.0, variant)
        close = dtype(float(want))  # the exact loss rounded to the dtype
        assert abs(loss[i] - close) <= 2 * np.spacing(close), (i, loss[i], float(want))
        assert grad[i].tolist() == want_grad, (i, grad[i], want_grad)


@pytest.mark.parametrize("label_type", _LABELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_crammer_singer_rival_is_the_highest_score_where_margins_round_equal(dtype, label_type):
    """Main took the rival by ``argmax`` of the margins, which rounding ties: float64
    ``[0, 1e-20, 2e-20]`` (label 0) has margins ``1 + 1e-20`` and ``1 + 2e-20``, both
    1.0, and the subgradient went to ``1e-20`` (``[-1, 1, 0]``) where the scores'
    maximum is ``2e-20`` (``[-1, 0, 1]``); float32 the same with ``0.3`` and the next
    float32 up. The loss is the same either way."""
    up = float(np.nextafter(dtype(0.3), dtype(1)))
    z = np.array([[0.0, 1e-20, 2e-20], [0.0, 0.3, up], [up, 0.3, 0.0]], dtype=dtype)
    labels = np.array([0, 0, 2], dtype=label_type)
    grad = crossent.multiclass_hinge_loss_grad(z, labels, reduction="sum")
    loss = crossent.multiclass_hinge_loss(z, labels, reduction="none")
    assert grad.tolist() == [[-1, 0, 1], [-1, 0, 1], [1, 0, -1]]
    for i in range(3):
        want, want_grad = _exact_loss(z[i], int(labels[i]), 1.0, "crammer_singer")
        assert want_grad == grad[i].tolist()
        assert abs(loss[i] - dtype(float(want))) <= np.spacing(dtype(float(want)))
