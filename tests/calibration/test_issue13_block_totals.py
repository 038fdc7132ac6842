"""Issue 13, evaluation item: the block sums of the fused pass (``map_totals``: the Numba
epilogue beside the row kernel, and the NumPy twin's reductions) agree with each other,
with exact references, and keep the public numbers of both backends equal."""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent
from crossent.calibration import _row_kernels, _summaries
from crossent.calibration._binning import assign_bins, uniform_edges
from crossent.calibration._inputs import as_predictions

from tolerances import ROUNDING, SUM


def _probs(rows: int, classes: int, dtype: type, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(classes, 0.3), size=rows).astype(dtype)


def _totals(probs: np.ndarray, labels: np.ndarray, request: _summaries.TotalsRequest) -> list:
    predictions = as_predictions(probs, labels, form="probs", defer=True)
    return list(_summaries.map_totals(predictions, request))


def _both(
    monkeypatch: pytest.MonkeyPatch,
    probs: np.ndarray,
    labels: np.ndarray,
    request: _summaries.TotalsRequest,
) -> tuple[list, list]:
    pytest.importorskip("numba")
    fused = _totals(probs, labels, request)
    with monkeypatch.context() as patch:
        patch.setattr(_row_kernels, "available", lambda: False)
        twin = _totals(probs, labels, request)
    return fused, twin


def _assert_same(fused: list, twin: list) -> None:
    assert [start for start, _ in fused] == [start for start, _ in twin]
    for (_, a), (_, b) in zip(fused, twin, strict=True):
        np.testing.assert_allclose(a.sums, b.sums, **SUM.tol(np.float64))
        np.testing.assert_array_equal(a.class_count, b.class_count)
        np.testing.assert_allclose(a.class_surprisal, b.class_surprisal, **SUM.tol(np.float64))
        assert (a.bins is None) == (b.bins is None)
        if a.bins is not None:
            np.testing.assert_array_equal(a.bins.count, b.bins.count)
            np.testing.assert_array_equal(a.bins.hits, b.bins.hits)
            np.testing.assert_allclose(
                a.bins.confidence_sum, b.bins.confidence_sum, **SUM.tol(np.float64)
            )
        assert a.found == b.found  # the same rows, and -log p_y by NumPy on both


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("classes", [1, 2, 3, 10, 17, 257])
@pytest.mark.parametrize("closed", ["left", "right"])
def test_issue13_block_totals_equal_the_numpy_twin(
    monkeypatch: pytest.MonkeyPatch, dtype: type, classes: int, closed: str
) -> None:
    probs = _probs(3000, classes, dtype, seed=classes)
    labels = np.random.default_rng(2).integers(0, classes, size=3000)
    request = _summaries.TotalsRequest(
        top=True,
        entropy=True,
        brier=True,
        spherical=True,
        classes=classes,
        bins=15,
        closed=closed,
        keep=7,  # type: ignore[arg-type]
    )
    _assert_same(*_both(monkeypatch, probs, labels, request))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_issue13_block_totals_of_hard_rows(monkeypatch: pytest.MonkeyPatch, dtype: type) -> None:
    """Ties (first maximum), a label of probability 0 (surprisal +inf, a sum of +inf and
    not NaN), certain rows, near-certain rows, subnormal entries, confidences exactly on
    the bin edges, and equal p_y in the most surprising rows (earlier rows first)."""
    tiny = 1e-310 if dtype == np.float64 else 1e-40
    eps = 1e-12 if dtype == np.float64 else 1e-6
    rows = [
        [0.25, 0.25, 0.25, 0.25],
        [0.0, 0.5, 0.5, 0.0],
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
        [1 - eps, eps / 3, eps / 3, eps / 3],
        [tiny, 1.0 - 2 * tiny, tiny, 0.0],
        [0.4, 0.2, 0.2, 0.2],  # confidence 0.4 = 6/15 is a bin edge for 15 bins
        [0.6, 0.2, 0.1, 0.1],  # 0.6 = 9/15 as well
        [0.25, 0.25, 0.25, 0.25],
    ]
    probs = np.array(rows * 3, dtype=dtype)
    labels = np.array([2, 1, 0, 1, 0, 0, 0, 3, 1] * 3)  # row 3: label of probability 0
    for closed in ("left", "right"):
        request = _summaries.TotalsRequest(
            top=True,
            entropy=True,
            brier=True,
            spherical=True,
            classes=4,
            bins=15,
            closed=closed,
            keep=5,  # type: ignore[arg-type]
        )
        fused, twin = _both(monkeypatch, probs, labels, request)
        _assert_same(fused, twin)
        (_, totals), *_ = fused
        assert totals.sums[0] == math.inf  # not NaN from the compensation
        assert totals.found[:3] == [(math.inf, 3), (math.inf, 12), (math.inf, 21)]
        x = probs.astype(np.float64)
        confidence = x.max(axis=1)
        index = assign_bins(confidence, uniform_edges(15), closed)  # type: ignore[arg-type]
        assert totals.bins is not None
        np.testing.assert_array_equal(totals.bins.count, np.bincount(index, minlength=15))


def test_issue13_block_sums_are_compensated() -> None:
    """200000 rows in one block: the sums equal math.fsum of the per-row values to a
    couple of roundings (a plain running sum drifts by about sqrt(n) ulps)."""
    probs = _probs(200_000, 2, np.float64, seed=5)
    labels = np.random.default_rng(5).integers(0, 2, size=200_000)
    request = _summaries.TotalsRequest(top=True, entropy=True, brier=True, spherical=True)
    pytest.importorskip("numba")
    fused = _totals(probs, labels, request)
    x = probs
    p = x[np.arange(x.shape[0]), labels]
    others = np.square(x[np.arange(x.shape[0]), 1 - labels])  # two classes
    for index, terms in [
        (0, -np.log(p)),
        (1, others + np.square(1 - p)),
        (2, p / np.sqrt(others + p * p)),
    ]:
        got = sum(part.sums[index] for _, part in fused)
        assert got == pytest.approx(math.fsum(terms), rel=4e-16), index


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("classes", [1, 2, 3, 10, 17, 1000])
def test_issue13_lean_kernel_equals_the_general_kernel(dtype: type, classes: int) -> None:
    """Without the top label and the entropy the rows go through the lean kernel: the
    same p_y, sums of squares (or 0 without them) and suspect rows as the general one."""
    pytest.importorskip("numba")
    probs = _probs(500, classes, dtype, seed=classes)
    probs[7, 0] = np.nan  # suspect rows: an entry, and a row sum
    probs[9] *= 1.01
    labels = np.random.default_rng(3).integers(-classes, classes, size=500)  # unchecked
    general = _row_kernels.row_summaries(probs, labels, top=True, entropy=True, limit=1e-4)
    for top in (False, True):
        lean = _row_kernels.row_summaries(probs, labels, top=top, entropy=False, limit=1e-4)
        bare = _row_kernels.row_summaries(
            probs, labels, top=top, entropy=False, limit=1e-4, squares=False
        )
        assert general[0] == lean[0] == bare[0] == 2
        np.testing.assert_array_equal(lean[1], general[1])
        np.testing.assert_array_equal(bare[1], general[1])
        np.testing.assert_allclose(lean[2], general[2], **ROUNDING.tol(np.float64))
        assert not bare[2].any()
        if top:  # the same top label and (first) predicted class
            for got in (lean, bare):
                np.testing.assert_array_equal(got[3], general[3])
                np.testing.assert_array_equal(got[4], general[4])
    labels[123] = classes  # out of range: an IndexError, never a stray read
    with pytest.raises(IndexError, match=r"label .* of row 123"):
        _row_kernels.row_summaries(probs, labels, top=False, entropy=False, limit=1e-4)


@pytest.mark.parametrize("field", ["surprisal", "brier", "spherical", "bins"])
def test_issue13_lean_block_totals_equal_the_numpy_twin(
    monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    probs = _probs(5000, 10, np.float32, seed=11)
    labels = np.random.default_rng(12).integers(0, 10, size=5000)
    request = _summaries.TotalsRequest(
        top=field == "bins",
        bins=15 if field == "bins" else 0,
        brier=field == "brier",
        spherical=field == "spherical",
    )
    _assert_same(*_both(monkeypatch, probs, labels, request))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("classes", [3, 10, 257])
def test_issue13_state_equal_on_both_backends(
    monkeypatch: pytest.MonkeyPatch, dtype: type, classes: int
) -> None:
    pytest.importorskip("numba")
    probs = _probs(150_000 // classes + 11, classes, dtype, seed=3)  # several blocks
    labels = np.random.default_rng(4).integers(0, classes, size=probs.shape[0])

    def state() -> crossent.EvaluationSummary:
        return crossent.EvaluationState(classes, keep=12).update(probs, labels).compute()

    a = state()
    with monkeypatch.context() as patch:
        patch.setattr(_row_kernels, "available", lambda: False)
        b = state()
    assert a.most_surprising == b.most_surprising
    np.testing.assert_array_equal(a.per_class_count, b.per_class_count)
    np.testing.assert_allclose(a.per_class_nll, b.per_class_nll, **ROUNDING.tol(np.float64))
    np.testing.assert_array_equal(a.calibration.statistics.count, b.calibration.statistics.count)
    for name in ("nll", "brier", "spherical", "mean_entropy", "accuracy"):
        assert getattr(a, name) == ROUNDING.approx(getattr(b, name)), name
    assert a.calibration.value == ROUNDING.approx(b.calibration.value)
    # and the one-shot functions give the state's numbers
    assert crossent.negative_log_likelihood(probs, labels) == ROUNDING.approx(a.nll)
    assert crossent.brier_score(probs, labels) == ROUNDING.approx(a.brier)
    assert crossent.accuracy(probs, labels) == a.accuracy
    assert crossent.calibration_error(probs, labels).value == ROUNDING.approx(a.calibration.value)
