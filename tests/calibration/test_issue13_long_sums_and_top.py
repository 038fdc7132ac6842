"""Issue 13, evaluation speed: long float32 rows (more than ``_SHORT_ROWS`` classes)
whose top label is asked take the row's sum, its entries' check, its sum of squares but
the label's and its packed maximum in one loop (``_row_kernels_numba.long_sums_and_top``)
instead of two passes over the row (``row_sums``, then ``top_labels``).  Pinned here:
the label's entry, the squares and the suspect count are the sums' loop's bit for bit
(the squares in the same order, so that a Brier score has the same bits whichever pass
formed it) and NumPy's and ``math.fsum``'s; the top label is NumPy's first maximum on
clean rows and ``top_labels``' order of the float32 bits off the simplex (NaN above
every number, a negative entry below 0); through the public calls,
``EvaluationState``'s Brier score equals ``brier_score``'s and its bins
``calibration_error``'s."""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent

pytest.importorskip("numba")

from crossent.calibration import _row_kernels
from crossent.calibration import _row_kernels_numba as kernels

from .test_issue13_fused_squares import _hard_rows as fused_squares_rows


def _hard_rows(rows: int, classes: int, seed: int) -> np.ndarray:
    """test_issue13_fused_squares' rows (softmax rows of several temperatures, ties for
    the maximum, an all-tied row, a one-hot row among -0.0, a first entry 0, sums off
    the tolerance and within it), with a NaN, a negative and an above-1 entry."""
    probs = fused_squares_rows(rows, classes, seed)
    probs[0, classes - 1] = np.nan
    probs[1, 0] = -0.25
    probs[2, classes // 2] = 1.5
    return probs


@pytest.mark.parametrize("squares", [True, False])
@pytest.mark.parametrize("classes", [65, 1000])
@pytest.mark.parametrize("rows", [11, 130])
def test_issue13_long_sums_and_top_equal_the_sums_loop_and_numpy(
    rows: int, classes: int, squares: bool
) -> None:
    probs = _hard_rows(rows, classes, seed=classes * 10 + rows)
    labels = np.random.default_rng(rows).integers(-classes, classes, size=rows).astype(np.intp)
    one = np.empty((3, rows))
    predicted = np.empty(rows, dtype=np.intp)
    suspect = kernels.long_sums_and_top(
        (probs, probs.view(np.int32), labels), squares, 1e-4, (one[0], one[1], one[2]), predicted
    )
    # the sums' loop alone (row_sums: the pass without the top label), bit for bit
    alone = _row_kernels.row_summaries(
        probs, labels, top=False, entropy=False, limit=1e-4, squares=squares
    )
    assert suspect == alone[0]
    np.testing.assert_array_equal(one[0], alone[1])
    np.testing.assert_array_equal(one[1], alone[2])  # (NaN where NaN)
    # NumPy: the label's entry, the suspect rows, the first maximum of clean rows
    wide = probs.astype(np.float64)
    y = labels % classes
    np.testing.assert_array_equal(one[0], wide[np.arange(rows), y])
    bad = ((wide < 0) | (wide > 1) | np.isnan(wide)).any(axis=1)
    bad |= np.abs(np.nansum(wide, axis=1) - 1.0) > 1e-4
    assert suspect == int(np.count_nonzero(bad))
    assert bad[[0, 1, 2, 9]].all()
    # off the simplex, the order of the float32 bits (top_labels'): NaN above every
    # number, a negative entry below 0; a one-hot row among -0.0 its 1
    assert predicted[0] == classes - 1
    assert np.isnan(one[2][0])
    assert predicted[1] == np.argmax(probs[1, 1:]) + 1
    assert one[2][1] == wide[1, 1:].max()
    assert predicted[2] == classes // 2
    assert one[2][2] == 1.5
    assert predicted[7] == classes // 2
    assert one[2][7] == 1.0
    clean = np.flatnonzero(~bad)
    np.testing.assert_array_equal(predicted[clean], np.argmax(probs[clean], axis=1))
    np.testing.assert_array_equal(one[2][clean], wide[clean].max(axis=1))
    for i in clean:
        truth = (
            math.fsum(float(v) ** 2 for j, v in enumerate(wide[i]) if j != y[i]) if squares else 0.0
        )
        assert abs(one[1][i] - truth) <= 2 * classes * np.finfo(float).eps * truth


@pytest.mark.parametrize("classes", [65, 300])
def test_issue13_update_of_long_rows_equals_brier_score_and_calibration_error(
    classes: int,
) -> None:
    """One block of long rows: the update's pass (top label and squares in one loop)
    gives ``brier_score``'s Brier (the sums' loop alone) and ``calibration_error``'s
    bins (top label without squares), bit for bit."""
    rng = np.random.default_rng(classes)
    logits = rng.normal(size=(1500, classes)) * 2.5
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    labels = rng.integers(0, classes, size=1500)
    state = crossent.EvaluationState(classes).update(probs, labels).compute()
    assert state.brier == crossent.brier_score(probs, labels)
    ece = crossent.calibration_error(probs, labels)
    assert state.accuracy == np.mean(np.argmax(probs, axis=1) == labels)
    assert state.calibration.value == ece.value
    np.testing.assert_array_equal(state.calibration.statistics.count, ece.statistics.count)
    np.testing.assert_array_equal(state.calibration.statistics.hits, ece.statistics.hits)
    np.testing.assert_array_equal(
        state.calibration.statistics.confidence_sum, ece.statistics.confidence_sum
    )
    wide = probs.astype(np.float64)
    truth = math.fsum(np.square(wide - np.eye(classes)[labels]).ravel().tolist()) / 1500
    assert abs(state.brier - truth) <= 1e-13
