"""Issue 13, evaluation item: the block sums in one compiled pass per block, chunk by
chunk (``_row_kernels.block_totals``: at most 256 rows / about 4096 entries a chunk,
nothing per row of the block kept).  Chunk boundaries must not show: the sums, bins,
per-class statistics, the most surprising rows (with ties across chunks), the
validation and the label check equal the NumPy twin's and exact references whatever
the number of classes (one row per chunk past 4096 classes) and rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent
from crossent.calibration import _row_kernels, _summaries
from crossent.calibration._inputs import as_predictions
from crossent.errors import InputError

from tolerances import SUM

pytest.importorskip("numba")

_EVERYTHING = _summaries.TotalsRequest(
    top=True, entropy=True, brier=True, spherical=True, bins=15, keep=9
)


def _probs(rows: int, classes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(classes, 0.5), size=rows).astype(np.float32)


def _totals(
    probs: np.ndarray, labels: np.ndarray, request: _summaries.TotalsRequest
) -> list[_summaries.BlockTotals]:
    predictions = as_predictions(probs, labels, form="probs", defer=True)
    return [part for _, part in _summaries.map_totals(predictions, request)]


def _twin(
    monkeypatch: pytest.MonkeyPatch,
    probs: np.ndarray,
    labels: np.ndarray,
    request: _summaries.TotalsRequest,
) -> list[_summaries.BlockTotals]:
    with monkeypatch.context() as patch:
        patch.setattr(_row_kernels, "available", lambda: False)
        return _totals(probs, labels, request)


@pytest.mark.parametrize(
    ("rows", "classes"),
    [(1, 1), (771, 2), (517, 16), (483, 17), (9, 4095), (7, 4096), (5, 4097), (4, 9000)],
)
def test_issue13_chunked_block_totals_equal_the_numpy_twin(
    monkeypatch: pytest.MonkeyPatch, rows: int, classes: int
) -> None:
    """Rows that end mid-chunk, chunks of 256, 240 and 1 rows, a row longer than a chunk."""
    probs = _probs(rows, classes, seed=rows + classes)
    labels = np.random.default_rng(rows).integers(0, classes, size=rows)
    request = _summaries.TotalsRequest(**{**_EVERYTHING.__dict__, "classes": classes})
    fused, twin = _totals(probs, labels, request), _twin(monkeypatch, probs, labels, request)
    assert len(fused) == len(twin)
    for a, b in zip(fused, twin, strict=True):
        np.testing.assert_allclose(a.sums, b.sums, **SUM.tol(np.float64))
        np.testing.assert_array_equal(a.class_count, b.class_count)
        np.testing.assert_allclose(a.class_surprisal, b.class_surprisal, **SUM.tol(np.float64))
        assert a.bins is not None
        assert b.bins is not None
        np.testing.assert_array_equal(a.bins.count, b.bins.count)
        np.testing.assert_array_equal(a.bins.hits, b.bins.hits)
        np.testing.assert_allclose(
            a.bins.confidence_sum, b.bins.confidence_sum, **SUM.tol(np.float64)
        )
        assert a.found == b.found


def test_issue13_chunked_sums_equal_fsum_of_the_kernels_rows() -> None:
    """Several chunks in one block: each sum within a couple of roundings of math.fsum of
    the per-row values the kernel's own row pass gives (the chunks' plain sums added
    with Neumaier's compensation)."""
    probs = np.random.default_rng(1).dirichlet(np.full(10, 0.5), size=5000)
    labels = np.random.default_rng(1).integers(0, 10, size=5000)
    (totals,) = _totals(probs, labels, _EVERYTHING)
    _, p, others, _, _, ent = _row_kernels.row_summaries(
        probs, labels, top=True, entropy=True, limit=1e-3
    )
    assert ent is not None
    terms = [
        -_row_kernels.log_positive(p),
        others + np.square(1 - p),
        p / np.sqrt(others + p * p),
        np.maximum(ent, 0.0),
    ]
    for index, values in enumerate(terms):
        assert totals.sums[index] == pytest.approx(math.fsum(values), rel=4e-16), index


def test_issue13_most_surprising_ties_across_chunks_keep_the_earlier_rows() -> None:
    """Equal p_y in rows of different chunks (256 rows each for 10 classes): the earlier
    rows come first, as in the NumPy twin's stable order."""
    probs = np.full((1000, 10), 0.1, dtype=np.float32)
    worst = [3, 300, 600, 900, 255, 256, 999]
    probs[worst] = [0.01] + [0.11] * 9
    labels = np.zeros(1000, dtype=np.intp)
    request = _summaries.TotalsRequest(keep=5)
    (totals,) = _totals(probs, labels, request)
    assert [row for _, row in totals.found] == sorted(worst)[:5]
    assert all(value == pytest.approx(-math.log(np.float32(0.01))) for value, _ in totals.found)


def test_issue13_bad_label_in_a_later_chunk_stops_before_reading() -> None:
    probs = _probs(2000, 10, seed=2)
    labels = np.random.default_rng(2).integers(0, 10, size=2000)
    labels[1500] = 10  # unchecked (validate=False): an IndexError naming the row
    with pytest.raises(IndexError, match=r"label 10 of row 1500"):
        _row_kernels.block_totals(
            probs,
            labels,
            top=True,
            entropy=True,
            limit=1e-3,
            spherical=True,
            squares=True,
            classes=True,
            edges=None,
            left=True,
            keep=3,
        )


@pytest.mark.parametrize("row", [0, 255, 256, 1999])
def test_issue13_invalid_row_in_any_chunk_is_reported(row: int) -> None:
    """The fused pass flags a bad row wherever its chunk, and the full check names it."""
    probs = _probs(2000, 10, seed=3)
    labels = np.random.default_rng(3).integers(0, 10, size=2000)
    probs[row, 4] = -0.25
    for metric in (
        lambda: crossent.negative_log_likelihood(probs, labels),
        lambda: crossent.calibration_error(probs, labels),
        lambda: crossent.EvaluationState(10).update(probs, labels),
    ):
        with pytest.raises(InputError, match=rf"index \({row}, 4\)"):
            metric()
