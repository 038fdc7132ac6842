"""Issue 13, evaluation speed: the row pass split into flag-free loops (the sums, the
top label packed with its index for float32, the entries' check in one flat loop per
chunk for short rows and in the row's loop for long ones).  The top label (first
maximum, on ties too), the suspect rows (exact counts, whichever loop found them) and
the labels' check equal NumPy's references on both sides of every switch."""

from __future__ import annotations

import numpy as np
import pytest

from crossent.calibration import _row_kernels

pytest.importorskip("numba")

# both sides of _SHORT_ROWS (64) and of a chunk (256 rows / 4096 entries)
_CLASSES = [1, 2, 10, 64, 65, 300, 5000]


def _rows(rows: int, classes: int, dtype: type, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # few distinct values: many ties for the maximum
    probs = rng.integers(0, 4, size=(rows, classes)).astype(np.float64) + 1e-3
    return (probs / probs.sum(axis=1, keepdims=True)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("classes", _CLASSES)
def test_issue13_top_label_is_the_first_maximum(dtype: type, classes: int) -> None:
    probs = _rows(600, classes, dtype, seed=classes)
    probs[3] = 0.0  # a row of equal entries (0 and -0.0): its first class
    probs[3, -1] = 1.0
    probs[3, :-1] = -0.0
    probs[5] = 1.0 / classes  # all tied
    labels = np.random.default_rng(1).integers(0, classes, size=600)
    suspect, p_label, _, confidence, predicted, _ = _row_kernels.row_summaries(
        probs, labels, top=True, entropy=False, limit=1e-3
    )
    assert suspect == 0
    np.testing.assert_array_equal(predicted, np.argmax(probs, axis=1))
    np.testing.assert_array_equal(confidence, probs.max(axis=1).astype(np.float64))
    np.testing.assert_array_equal(p_label, probs[np.arange(600), labels].astype(np.float64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("classes", _CLASSES)
@pytest.mark.parametrize("top", [False, True])
def test_issue13_suspect_rows_are_counted_exactly(dtype: type, classes: int, top: bool) -> None:
    """Bad entries (NaN, negative, above 1), a bad row sum, and a row with both: each
    suspect row counted once, wherever the loops found it."""
    probs = _rows(700, classes, dtype, seed=classes + 1)
    bad_rows = [0, 255, 256, 699]
    probs[0, classes - 1] = np.nan
    probs[255, 0] = -0.25
    probs[256, classes // 2] = 1.5  # entry above 1 and the row's sum off: one row
    probs[699] *= 1.01  # the sum only
    labels = np.random.default_rng(2).integers(-classes, classes, size=700)  # unchecked
    for entropy in (False, True):
        suspect = _row_kernels.row_summaries(probs, labels, top=top, entropy=entropy, limit=1e-4)[0]
        assert suspect == len(bad_rows)
        totals = _row_kernels.block_totals(
            probs,
            labels,
            top=top,
            entropy=entropy,
            limit=1e-4,
            spherical=False,
            squares=True,
            classes=False,
            edges=None,
            left=True,
            keep=0,
        )
        assert totals[0] == len(bad_rows)


@pytest.mark.parametrize("classes", [10, 300])
def test_issue13_label_out_of_range_in_a_later_chunk(classes: int) -> None:
    probs = _rows(1000, classes, np.float32, seed=3)
    labels = np.zeros(1000, dtype=np.int64)
    labels[777] = -classes - 1
    with pytest.raises(IndexError, match=r"label .* of row 777"):
        _row_kernels.row_summaries(probs, labels, top=True, entropy=False, limit=1e-4)
    labels[777] = -classes  # the first class, counted from the end: accepted
    assert _row_kernels.row_summaries(probs, labels, top=True, entropy=False, limit=1e-4)[0] == 0
