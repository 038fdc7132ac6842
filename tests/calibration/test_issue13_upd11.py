"""Issue 13, branch upd11 (``EvaluationState.update`` on short rows): two changes to the
``totals`` kernel that must keep every bit.

* The confidence sums of the bins whose additions are exact (float32 rows, bins from
  ``_row_kernels.rounding_bins`` on) are added into four interleaved sums a bin, in
  any order, and folded at the block's end, or as soon as a chunk with a confidence
  above 1 makes every bin's additions round (from there on in row order, with TwoSum).
  Each bin's count, sum and hits must still be ``numpy.bincount``'s in row order, and
  the exact bins' sums the exact sums (``math.fsum``).
* Each row's label entry in ``tile_group`` is blended from its transposed column rather
  than gathered from the rows: the per-class surprisals must be those of the label's
  entry for labels in every column of 10, 12 (``_NARROW_CLASSES``) and 16 classes.

Guards: they pass on main too (the same numbers, faster).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent
from crossent.calibration._binning import assign_uniform_bins

pytest.importorskip("numba")


def _softmax_rows(rows: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 softmax rows (sharp: most confidences in the top bins, the same bin row
    after row) and labels covering every class."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(rows, classes)) * 3.0
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    labels = rng.permutation(np.arange(rows) % classes)
    return p.astype(np.float32), labels


def _bin_oracle(probs: np.ndarray, labels: np.ndarray, bins: int) -> tuple[np.ndarray, ...]:
    """count, confidence sum (row order, float64) and hits of each top-label bin."""
    confidence = probs.max(axis=1).astype(np.float64)
    hit = (probs.argmax(axis=1) == labels).astype(np.float64)
    index = assign_uniform_bins(confidence, bins, "left")
    return (
        np.bincount(index, minlength=bins).astype(np.float64),
        np.bincount(index, weights=confidence, minlength=bins),
        np.bincount(index, weights=hit, minlength=bins),
        index,
        confidence,
    )


def test_issue13_upd11_exact_bins_in_any_order() -> None:
    """5000 float32 rows (20 chunks of the kernel): every bin's count, confidence sum
    and hits are numpy.bincount's in row order, bit for bit, and the sums of the bins
    past bin 0 are exact."""
    probs, labels = _softmax_rows(5000, 10, seed=11)
    stats = crossent.EvaluationState(10, entropy=False).update(probs, labels).calibration()
    count, total, hits, index, confidence = _bin_oracle(probs, labels, 15)
    np.testing.assert_array_equal(stats.statistics.count, count)
    np.testing.assert_array_equal(stats.statistics.confidence_sum, total)
    np.testing.assert_array_equal(stats.statistics.hits, hits)
    for b in range(1, 15):
        assert total[b] == math.fsum(confidence[index == b])


def test_issue13_upd11_unbounded_chunk_folds_the_exact_sums() -> None:
    """An entry of 1e9 in the 9th chunk (validate=False): the bins' sums up to there
    were exact in any order, then added in row order with their rounding errors (the
    top bin's, onto 1e9, round); every bin's sum is still numpy.bincount's in row
    order (a kernel that folded the exact sums only at the block's end, after the
    rounded ones, gives another top bin)."""
    probs, labels = _softmax_rows(3000, 10, seed=12)
    probs[9 * 256 + 17, 3] = 1e9
    state = crossent.EvaluationState(10, entropy=False)
    stats = state.update(probs, labels, validate=False).calibration().statistics
    count, total, hits, _, _ = _bin_oracle(probs, labels, 15)
    np.testing.assert_array_equal(stats.count, count)
    np.testing.assert_array_equal(stats.confidence_sum, total)
    np.testing.assert_array_equal(stats.hits, hits)


@pytest.mark.parametrize("classes", [10, 12, 16])
def test_issue13_upd11_label_entry_of_every_column(classes: int) -> None:
    """The per-class NLL of rows whose labels cover every column: each row's surprisal
    from its label's entry (float64 NumPy reference, within a few ulps of the sums)."""
    probs, labels = _softmax_rows(800, classes, seed=classes)
    summary = crossent.EvaluationState(classes, entropy=False).update(probs, labels).compute()
    surprisal = -np.log(probs[np.arange(800), labels].astype(np.float64))
    expected = np.bincount(labels, weights=surprisal) / np.bincount(labels)
    np.testing.assert_allclose(summary.per_class_nll, expected, rtol=1e-13)
    brier = (probs.astype(np.float64) ** 2).sum(axis=1) - 2 * np.exp(-surprisal) + 1.0
    assert summary.brier == pytest.approx(brier.mean(), rel=1e-12)


def test_issue13_upd11_many_bins_add_in_row_order() -> None:
    """5000 bins (more than the kernel's 4096 tallied in four ways): no spread, the
    exact bins' sums added into their sums in row order; numpy.bincount's bits."""
    probs, labels = _softmax_rows(3000, 10, seed=13)
    state = crossent.EvaluationState(10, bins=5000, entropy=False)
    stats = state.update(probs, labels).calibration().statistics
    count, total, hits, _, _ = _bin_oracle(probs, labels, 5000)
    np.testing.assert_array_equal(stats.count, count)
    np.testing.assert_array_equal(stats.confidence_sum, total)
    np.testing.assert_array_equal(stats.hits, hits)
