"""Issue 13, evaluation item: ``totals`` sums a clean chunk's entropy terms flat.

``EvaluationState.update``'s kernel (``_row_kernels_numba.totals``) used to sum each row's
entropy terms (a short reassociated loop per row, about half of it horizontal sums),
clip each row's entropy at 0, and sum the rows as a pairwise tree.  For a chunk without a
suspect row (every entry in [0, 1], no NaN) every term p log p is <= 0, so each row's
entropy is >= 0 and the clip changes nothing: such a chunk's terms are now summed in 256
interleaved running sums (``folded_sum``: an elementwise loop, vectorised without
reassociation, so the order is fixed whatever the vector width), then the 256 lanes as
a pairwise tree; a chunk with a suspect row keeps the per-row sums and their clip.
Measured, 10^6 x 10 float32 on the 2-core Emerald Rapids, one thread: the chunk sums
2.2 ms, folded 1.05 ms.

Checked: ``folded_sum`` bit for bit against the same order written in NumPy (so the
order of the stretches or the zero padding changed fails), and within a few roundings
of ``math.fsum``; the kernel's entropy sum bit for bit against its own terms folded so
and added with Neumaier's compensation (one chunk: the chunk's part exactly), and
against ``math.fsum`` of the rows' entropies (float64 ``np.log``), with row and class
counts that leave a short last chunk and a chunk length not a multiple of 256; and a
block with a row whose entries leave [0, 1] (its entropy negative: clipped at 0, as
before).  Mutants caught: the fold taken for suspect chunks too (the clip test), the
zero padding dropped, 128 lanes in place of 256 (the kernel's bits on one chunk), the
stretches summed last first, the sum's sign.  (Lanes reversed or rotated are the same
tree: equivalent, not caught.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from crossent.calibration import _row_kernels

pytestmark = pytest.mark.skipif(not _row_kernels.available(), reason="needs Numba")


def _kernels() -> object:
    from crossent.calibration import _row_kernels_numba

    return _row_kernels_numba


def _pairwise(values: np.ndarray) -> float:
    """``pairwise_sum`` of a power-of-two length, in NumPy: the upper half onto the lower."""
    values = values.copy()
    size = values.shape[0]
    while size > 1:
        size //= 2
        values[:size] = values[:size] + values[size : 2 * size]
    return float(values[0])


def _folded_reference(values: np.ndarray, lanes: int) -> float:
    """Lane l sums values l, l + lanes, ... in order (zeros past the end), then a tree."""
    padded = np.zeros(-(-values.shape[0] // lanes) * lanes)
    padded[: values.shape[0]] = values
    running = np.zeros(lanes)
    for stretch in padded.reshape(-1, lanes):
        running = running + stretch  # elementwise: one rounding per lane and step
    return _pairwise(running)


@pytest.mark.parametrize("count", [0, 1, 255, 256, 257, 2560, 2561, 4096, 9999])
def test_issue13_folded_sum_order_and_accuracy(count: int) -> None:
    kernels = _kernels()
    rng = np.random.default_rng(count)
    values = -rng.random(count) * np.exp(rng.normal(size=count) * 8)  # mixed magnitudes
    buffer = np.full(-(-max(count, 1) // 256) * 256, np.nan)  # stale tail: padded over
    buffer[:count] = values
    got = kernels.folded_sum(buffer, count, np.empty(256))
    expected = _folded_reference(values, 256)
    assert np.float64(got).view(np.int64) == np.float64(expected).view(np.int64)
    exact = math.fsum(values)
    rounds = -(-count // 256) + 8  # the roundings each value goes through, at most
    assert abs(got - exact) <= rounds * 2.0**-53 * float(np.sum(np.abs(values))) + 1e-300


def _compensated_sum(parts: list[float]) -> float:
    """The parts added in order with Neumaier's compensation, as ``totals`` adds its
    chunks' (and parts') sums: the running sum plus the rounding errors' sum.
    (Also imported by test_issue13_update_entropy_chunks.)"""
    total = carry = 0.0
    for part in parts:
        t = total + part
        carry += ((total - t) + part) if abs(total) >= abs(part) else ((part - t) + total)
        total = t
    return total + carry


def _entropy_sum(values: np.ndarray, labels: np.ndarray) -> float:
    """The entropy sum of ``totals`` (``block_totals``, every stage on, ``limit`` 1e-3).
    (Also imported by test_issue13_update_entropy_chunks.)"""
    _, _, (sums, _, _, _) = _row_kernels.block_totals(
        values,
        labels,
        top=True,
        entropy=True,
        limit=1e-3,
        spherical=True,
        squares=True,
        classes=True,
        edges=np.linspace(0.0, 1.0, 16),
        left=False,
        keep=4,
    )
    return float(sums[3])


def _row_entropies(values: np.ndarray) -> np.ndarray:
    p = values.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return np.array([-math.fsum(row) for row in terms])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("rows", "classes"), [(1000, 10), (777, 7), (300, 333), (5, 5000)])
def test_issue13_folded_entropy_of_clean_rows(dtype: type, rows: int, classes: int) -> None:
    rng = np.random.default_rng(rows + classes)
    values = rng.dirichlet(np.full(classes, 0.2), size=rows).astype(dtype)
    values[::7, 0] = 0.0  # 0 log 0 = 0 (rows renormalised below keep within the limit)
    values = (values / values.sum(axis=1, keepdims=True, dtype=np.float64)).astype(dtype)
    labels = rng.integers(0, classes, size=rows)
    exact = math.fsum(_row_entropies(values))
    got = _entropy_sum(values, labels)
    assert got > 0
    assert abs(got - exact) <= 1e-13 * exact


def test_issue13_folded_entropy_keeps_the_clip_of_a_suspect_row() -> None:
    rng = np.random.default_rng(5)
    values = rng.dirichlet(np.full(10, 0.5), size=600)
    values[300] = 0.0
    values[300, 0] = 2.0  # entry outside [0, 1]: entropy -2 log 2 < 0, clipped at 0
    labels = rng.integers(0, 10, size=600)
    rows = _row_entropies(values)
    assert rows[300] < 0
    exact = math.fsum(np.maximum(rows, 0.0))
    got = _entropy_sum(values, labels)
    assert abs(got - exact) <= 1e-13 * exact
    assert abs(got - math.fsum(rows)) > 1.0  # not the unclipped sum


@pytest.mark.parametrize(
    ("rows", "classes"), [(200, 10), (36, 111), (1, 5000), (1000, 10), (777, 7), (90, 129)]
)
def test_issue13_folded_entropy_bits_of_the_kernel(rows: int, classes: int) -> None:
    # the kernel's entropy sum rebuilt from its own terms (entropy_terms): each chunk
    # folded in 256 lanes as above, the chunks added with Neumaier's compensation (the
    # first three one chunk each: the sum is the chunk's part, whose last bits the
    # compensated sum of many chunks would round away)
    kernels = _kernels()
    rng = np.random.default_rng(rows)
    values = rng.dirichlet(np.full(classes, 0.3), size=rows).astype(np.float32)
    labels = rng.integers(0, classes, size=rows)
    flat = values.reshape(-1)
    chunk = min(_row_kernels._PART_ROWS, max(1, _row_kernels._CHUNK_ENTRIES // classes))
    parts = []
    for c0 in range(0, rows, chunk):
        count = (min(c0 + chunk, rows) - c0) * classes
        terms = np.empty(count)
        kernels.entropy_terms(flat, c0 * classes, count, terms)
        parts.append(0.0 - _folded_reference(terms, 256))
    expected = _compensated_sum(parts)
    got = _entropy_sum(values, labels)
    assert np.float64(got).view(np.int64) == np.float64(expected).view(np.int64)
