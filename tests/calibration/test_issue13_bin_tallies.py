"""Issue 13, evaluation speed: the fused kernel's calibration bins without a table of
edges or three scatters per row (``_row_kernels_numba.add_to_bins``): the edges of
``numpy.linspace(0, 1, bins + 1)`` formed as ``j * edges[1]`` (the last 1), each bin's
confidence sum added in row order, its count and hits tallied as integers in four
interleaved histograms.  The bins must be bit for bit those of a search over the
linspace edges followed by ``numpy.bincount`` in row order."""

from __future__ import annotations

import numpy as np
import pytest

from crossent.calibration import _row_kernels
from crossent.calibration._binning import assign_bins, uniform_edges

pytest.importorskip("numba")


@pytest.mark.parametrize("bins", [*range(1, 130), 997, 1000, 4096, 10007])
def test_issue13_linspace_edges_are_multiples_of_the_first(bins: int) -> None:
    """The assumption the kernel makes about ``uniform_edges``: edge j is j times edge 1
    (one rounded product, NumPy's ``linspace``), the last exactly 1."""
    edges = uniform_edges(bins)
    step = edges[1]
    formed = np.append(np.arange(bins) * step, 1.0)
    np.testing.assert_array_equal(edges, formed)
    assert step == 1.0 / bins


def _oracle(
    confidence: np.ndarray, hit: np.ndarray, bins: int, closed: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """count, confidence sum (row order) and hits of each bin: a binary search over the
    linspace edges, then ``numpy.bincount``."""
    index = assign_bins(confidence, uniform_edges(bins), closed)  # type: ignore[arg-type]
    return (
        np.bincount(index, minlength=bins).astype(np.float64),
        np.bincount(index, weights=confidence, minlength=bins),
        np.bincount(index, weights=hit.astype(np.float64), minlength=bins),
    )


def _hard_rows(rows: int, bins: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float64 two-class rows whose confidence is an edge, an edge's neighbour, 1, 1/2,
    or a long run in one bin (consecutive rows of one bin: the scatter's hard case)."""
    rng = np.random.default_rng(seed)
    edges = uniform_edges(bins)
    upper = edges[edges >= 0.5]
    pool = np.concatenate(
        [upper, np.nextafter(upper, 0.0), np.nextafter(upper, 2.0).clip(max=1.0), [0.5, 1.0]]
    )
    top = rng.choice(pool, size=rows)
    run = slice(rows // 3, rows // 3 + min(300, rows // 3))
    top[run] = pool[0]  # one bin, row after row, across a chunk's boundary
    probs = np.stack([top, 1.0 - top], axis=1)
    swap = rng.random(rows) < 0.5
    probs[swap] = probs[swap, ::-1]
    labels = rng.integers(0, 2, size=rows)
    return probs, labels


def _kernel_bins(
    probs: np.ndarray, labels: np.ndarray, bins: int, closed: str
) -> tuple[np.ndarray, ...]:
    *_, (_, _, bin_stats, _) = _row_kernels.block_totals(
        probs,
        labels,
        top=True,
        entropy=False,
        limit=1e-6,
        spherical=False,
        squares=False,
        classes=False,
        edges=uniform_edges(bins),
        left=closed == "left",
        keep=0,
        surprisal=False,
    )
    return tuple(bin_stats[:3])  # (the fourth row, the sums' rounding errors: evalstate1)


@pytest.mark.parametrize("closed", ["left", "right"])
@pytest.mark.parametrize("bins", [1, 2, 3, 7, 10, 15, 100, 4096, 4097])  # 4 tallies, then 1
@pytest.mark.parametrize("rows", [1, 3, 4, 5, 255, 256, 257, 1000, 2049])
def test_issue13_bins_of_edge_confidences_equal_search_and_bincount(
    closed: str, bins: int, rows: int
) -> None:
    probs, labels = _hard_rows(rows, bins, seed=bins * 10_000 + rows)
    confidence = probs.max(axis=1)
    hit = np.argmax(probs, axis=1) == labels
    count, total, hits = _kernel_bins(probs, labels, bins, closed)
    ref_count, ref_total, ref_hits = _oracle(confidence, hit, bins, closed)
    np.testing.assert_array_equal(count, ref_count)
    np.testing.assert_array_equal(hits, ref_hits)
    np.testing.assert_array_equal(total, ref_total)  # bitwise: row order in each bin


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("classes", [2, 10, 64, 1000])
def test_issue13_bins_of_softmax_rows_equal_search_and_bincount(dtype: type, classes: int) -> None:
    """Concentrated confidences (most rows in a few bins), float32 and float64 rows."""
    rng = np.random.default_rng(classes)
    rows = 3000 if classes < 1000 else 300
    logits = rng.normal(size=(rows, classes)) * 3.0
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(dtype)
    labels = rng.integers(0, classes, size=rows)
    confidence = probs.max(axis=1).astype(np.float64)
    hit = np.argmax(probs, axis=1) == labels
    for closed in ("left", "right"):
        got = _kernel_bins(probs, labels, 15, closed)
        for a, b in zip(got, _oracle(confidence, hit, 15, closed), strict=True):
            np.testing.assert_array_equal(a, b)


def test_issue13_unchecked_nan_confidence_lands_in_the_last_bin() -> None:
    """A NaN row (``validate=False`` lets it through): the last bin, as the search; its
    predicted class is the first NaN (the largest bits), a hit for label 0."""
    probs = np.full((9, 3), 1 / 3)
    probs[4] = np.nan
    labels = np.zeros(9, dtype=np.intp)
    count, total, hits = _kernel_bins(probs, labels, 5, "left")
    assert count.tolist() == [0, 8, 0, 0, 1]
    assert np.isnan(total[-1])
    assert total[1] == sum([1 / 3] * 8)  # in row order
    assert hits.tolist() == [0, 8, 0, 0, 1]
