"""Issue 13, evaluation speed: short float32 rows whose top label is asked take the row's
sum, its sum of squares but the label's (when asked: ``EvaluationState.update``) and
its packed maximum in one loop (``_row_kernels_numba.sums_and_top``), the confidence
read from the maximum's packed bits rather than from the row again.  Pinned here: the
squares are those of the sums' loop (``row_sums``, the pass without the top label) bit
for bit, so that a Brier score has the same bits whichever pass formed it, and within
a few ulps of ``math.fsum``; the first maximum and its value are NumPy's, on ties,
zeros, -0.0 and rows off the simplex; the Brier sum of the update's pass equals
``brier_score``'s."""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent
from crossent.calibration import _row_kernels

pytest.importorskip("numba")

from crossent.calibration import _row_kernels_numba as kernels

_CLASSES = [1, 2, 3, 7, 8, 9, 10, 16, 17, 31, 64]


def _hard_rows(rows: int, classes: int, seed: int) -> np.ndarray:
    """float32 softmax rows of several temperatures, with ties for the maximum (few
    distinct values), an all-tied row, a one-hot row among -0.0 and 0, a row whose
    first entry is 0, rows whose sum sits at and past the tolerance edges."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(rows, classes)) * rng.choice([0.3, 2.5, 8.0], size=(rows, 1))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    tied = rng.integers(0, 3, size=(rows // 3, classes)).astype(np.float64) + 1e-3
    probs[: rows // 3] = tied / tied.sum(axis=1, keepdims=True)
    probs = probs.astype(np.float32)
    probs[5] = np.float32(1.0 / classes)
    probs[7] = -0.0
    probs[7, classes // 2] = 1.0
    probs[8, 0] = 0.0
    probs[9] *= np.float32(1.0 + 2e-4)  # sum off by about 2e-4
    probs[10] *= np.float32(1.0 - 0.5e-4)
    return probs


def _both(probs: np.ndarray, labels: np.ndarray, limit: float) -> tuple[tuple, tuple]:
    """(row_sums' outputs, sums_and_top's outputs) of the rows, squares asked."""
    n = probs.shape[0]
    plain, fused = np.empty((2, n)), np.empty((3, n))
    predicted = np.empty(n, dtype=np.intp)
    ids = labels.astype(np.intp)
    s1 = kernels.row_sums(probs, ids, True, False, limit, plain[0], plain[1])
    s2 = kernels.sums_and_top((probs, ids), True, limit, fused[0], fused[1], fused[2], predicted)
    return (s1, plain[0], plain[1]), (s2, fused[0], fused[1], fused[2], predicted)


@pytest.mark.parametrize("classes", _CLASSES)
@pytest.mark.parametrize("rows", [11, 256, 700])
def test_issue13_fused_squares_equal_the_sums_loop_and_fsum(classes: int, rows: int) -> None:
    probs = _hard_rows(rows, classes, seed=classes * 100 + rows)
    labels = np.random.default_rng(rows).integers(-classes, classes, size=rows)
    (s1, p1, o1), (s2, p2, o2, confidence, predicted) = _both(probs, labels, 1e-4)
    np.testing.assert_array_equal(o2, o1)  # bit for bit: one Brier whatever the pass
    np.testing.assert_array_equal(p2, p1)
    assert s1 == s2
    wide = probs.astype(np.float64)
    y = labels % classes
    sums = wide.sum(axis=1)
    assert s2 == int(np.count_nonzero(np.abs(sums - 1.0) > 1e-4))
    assert s2 >= 1  # row 9
    for i in range(rows):
        truth = math.fsum(float(v) ** 2 for j, v in enumerate(wide[i]) if j != y[i])
        assert abs(o2[i] - truth) <= 2 * classes * np.finfo(float).eps * truth
    np.testing.assert_array_equal(p2, wide[np.arange(rows), y])
    # the first maximum (NumPy's argmax of the float32 values) and its value
    np.testing.assert_array_equal(predicted, np.argmax(probs, axis=1))
    np.testing.assert_array_equal(confidence, probs.max(axis=1).astype(np.float64))


@pytest.mark.parametrize("classes", [2, 10, 64])
def test_issue13_fused_top_of_rows_off_the_simplex_is_the_bits_order(classes: int) -> None:
    """NaN, negative and above-1 entries (seen unchecked, or before the full check
    names them): the maximum in the order of the float32 bits, as ``top_labels``
    (NaN above every number, a negative entry below 0, -0.0 below 0)."""
    probs = _hard_rows(40, classes, seed=classes)
    probs[0, classes - 1] = np.nan
    probs[1, 0] = -0.25
    probs[2, classes // 2] = 1.5
    probs[3] = -0.0
    probs[3, classes - 1] = 0.0  # the maximum is the last entry (bits 0 > -0.0's)
    labels = np.zeros(40, dtype=np.intp)
    _, (_, _, _, confidence, predicted) = _both(probs, labels, 1e-4)
    n = probs.shape[0]
    expected_conf, expected_pred = np.empty(n), np.empty(n, dtype=np.intp)
    kernels.top_labels(probs, probs.view(np.int32), True, expected_conf, expected_pred)
    np.testing.assert_array_equal(predicted, expected_pred)
    np.testing.assert_array_equal(confidence, expected_conf)  # NaN == NaN here
    assert predicted[0] == classes - 1
    assert np.isnan(confidence[0])
    assert predicted[3] == classes - 1
    assert confidence[3] == 0.0
    assert not np.signbit(confidence[3])


@pytest.mark.parametrize("classes", [3, 10, 64])
def test_issue13_update_brier_equals_brier_score_bit_for_bit(classes: int) -> None:
    """One block: the update's pass (top label asked, fused loop) and ``brier_score``'s
    (sums' loop) give the same Brier score, bit for bit, both near ``math.fsum``."""
    rng = np.random.default_rng(classes)
    logits = rng.normal(size=(5000, classes)) * 2.5
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    labels = rng.integers(0, classes, size=5000)
    state = crossent.EvaluationState(classes).update(probs, labels).compute()
    assert state.brier == crossent.brier_score(probs, labels)
    wide = probs.astype(np.float64)
    onehot = np.eye(classes)[labels]
    truth = math.fsum(np.square(wide - onehot).ravel().tolist()) / 5000
    assert abs(state.brier - truth) <= 1e-14 * truth
    _, p_label, others, confidence, predicted, _ = _row_kernels.row_summaries(
        probs, labels, top=True, entropy=False, limit=1e-3, squares=True
    )
    _, p_plain, others_plain, *_ = _row_kernels.row_summaries(
        probs, labels, top=False, entropy=False, limit=1e-3, squares=True
    )
    np.testing.assert_array_equal(others, others_plain)
    np.testing.assert_array_equal(p_label, p_plain)
    np.testing.assert_array_equal(predicted, np.argmax(probs, axis=1))
    np.testing.assert_array_equal(confidence, probs.max(axis=1).astype(np.float64))
