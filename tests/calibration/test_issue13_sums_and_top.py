"""Issue 13, evaluation speed: short float32 rows whose top label is asked without sums
of squares (``calibration_error``'s pass) take the row's sum and its packed maximum in
one loop (``_row_kernels_numba.sums_and_top``).  Its numbers must be those of the two
loops it replaces (``row_sums`` then ``top_labels``, taken when the squares are asked)
and of NumPy: the label's probability, the first maximum and its value, 0 for the
squares, and the exact count of suspect rows."""

from __future__ import annotations

import numpy as np
import pytest

from crossent.calibration import _row_kernels

pytest.importorskip("numba")

# short rows (the fused loop) up to _SHORT_ROWS = 64, and 65 (the two loops) for contrast
_CLASSES = [1, 2, 3, 10, 17, 64, 65]


def _rows(rows: int, classes: int, seed: int) -> np.ndarray:
    """float32 rows with few distinct values (ties for the maximum), an all-tied row, a
    row of -0.0 and 0 with one 1, and rows off the simplex."""
    rng = np.random.default_rng(seed)
    probs = rng.integers(0, 4, size=(rows, classes)).astype(np.float64) + 1e-3
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    probs[5] = np.float32(1.0 / classes)
    probs[7] = -0.0
    probs[7, classes // 2] = 1.0
    probs[8, 0] = 0.0  # first entry 0, the maximum later
    return probs


def _fused_and_generic(probs: np.ndarray, labels: np.ndarray, limit: float) -> tuple[tuple, tuple]:
    fused = _row_kernels.row_summaries(
        probs, labels, top=True, entropy=False, limit=limit, squares=False
    )
    generic = _row_kernels.row_summaries(
        probs, labels, top=True, entropy=False, limit=limit, squares=True
    )
    return fused, generic


@pytest.mark.parametrize("classes", _CLASSES)
@pytest.mark.parametrize("rows", [1, 9, 255, 256, 257, 700])
def test_issue13_sums_and_top_equal_numpy_and_the_two_loops(classes: int, rows: int) -> None:
    probs = _rows(max(rows, 9), classes, seed=classes * 1000 + rows)[:rows]
    labels = np.random.default_rng(rows).integers(-classes, classes, size=rows)  # unchecked
    fused, generic = _fused_and_generic(probs, labels, 1e-3)
    suspect, p_label, others, confidence, predicted, entropy = fused
    # NumPy: the first maximum (argmax of the float32 values, -0.0 == 0 ties go first;
    # no row here has -0.0 as its maximum), its value, the label's value
    np.testing.assert_array_equal(predicted, np.argmax(probs, axis=1))
    np.testing.assert_array_equal(confidence, probs.max(axis=1).astype(np.float64))
    np.testing.assert_array_equal(p_label, probs[np.arange(rows), labels].astype(np.float64))
    np.testing.assert_array_equal(others, np.zeros(rows))
    assert entropy is None
    sums = probs.astype(np.float64).sum(axis=1)
    assert suspect == int(np.count_nonzero(np.abs(sums - 1.0) > 1e-3))
    # the two loops: every output but the squares the same, bit for bit
    assert suspect == generic[0]
    for a, b in zip(fused[1:5], generic[1:5], strict=True):
        if b is generic[2]:
            continue  # the squares: asked on the generic side only
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("classes", _CLASSES)
def test_issue13_sums_and_top_count_bad_rows_once(classes: int) -> None:
    """NaN, negative, above 1 and a sum off: each suspect row counted once (the entries'
    check after the fused loop recounts the chunk), and the top label of such a row is
    that of the bit patterns, as the two loops (NaN above every number, a negative
    entry below 0)."""
    probs = _rows(600, classes, seed=classes + 7)
    probs[0, classes - 1] = np.nan
    probs[255, 0] = -0.25
    probs[256, classes // 2] = 1.5
    probs[599] *= np.float32(1.01)
    labels = np.random.default_rng(3).integers(0, classes, size=600)
    fused, generic = _fused_and_generic(probs, labels, 1e-4)
    wide = probs.astype(np.float64)
    entries = (wide < 0) | (wide > 1) | np.isnan(wide)
    bad = entries.any(axis=1) | (np.abs(np.nansum(wide, axis=1) - 1.0) > 1e-4)
    assert bad[[0, 255, 256, 599]].all()
    assert fused[0] == generic[0] == int(np.count_nonzero(bad))
    np.testing.assert_array_equal(fused[4], generic[4])
    np.testing.assert_array_equal(fused[3], generic[3])
    np.testing.assert_array_equal(fused[1], generic[1])
    assert fused[4][0] == classes - 1  # the NaN's bits are the largest


def test_issue13_calibration_error_of_short_rows_unchanged_by_the_fused_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The public number through the fused loop equals the NumPy twin's (search and
    bincount over NumPy's argmax and max), bit for bit."""
    import crossent

    rng = np.random.default_rng(11)
    logits = rng.normal(size=(5000, 10)) * 2.5
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    labels = rng.integers(0, 10, size=5000)
    fused = crossent.calibration_error(probs, labels)
    with monkeypatch.context() as patch:
        patch.setattr(_row_kernels, "available", lambda: False)
        twin = crossent.calibration_error(probs, labels)
    np.testing.assert_array_equal(fused.statistics.count, twin.statistics.count)
    np.testing.assert_array_equal(fused.statistics.hits, twin.statistics.hits)
    np.testing.assert_array_equal(fused.statistics.confidence_sum, twin.statistics.confidence_sum)
    assert fused.value == twin.value
