"""Issue 13, evaluation speed: the update's per-class sums and its most surprising rows
are taken in two loops over a chunk (``_row_kernels_numba.add_to_classes`` and
``keep_smallest``); once every kept place is filled, a chunk with no row below the
last kept value is passed over after one vectorised comparison.  Pinned against a
NumPy oracle: the per-class counts exactly and their surprisal sums bit for bit
(``numpy.bincount`` of the kernel's surprisals, row order), labels counting from the
end; the kept rows are the ``keep`` smallest label probabilities, earlier rows first
on ties, across chunks (ties with the last kept value, zeros, the smallest rows late
in the data, fewer rows than places)."""

from __future__ import annotations

import numpy as np
import pytest

from crossent.calibration import _row_kernels

pytest.importorskip("numba")


def _rows(rows: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 softmax rows whose label probabilities repeat (ties), with zeros."""
    rng = np.random.default_rng(seed)
    probs = rng.integers(1, 5, size=(rows, classes)).astype(np.float64)
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    labels = rng.integers(-classes, classes, size=rows)
    return probs, labels


def _kernel(probs: np.ndarray, labels: np.ndarray, keep: int) -> tuple:
    _, found_p, (_, class_stats, _, found) = _row_kernels.block_totals(
        probs,
        labels,
        top=True,
        entropy=False,
        limit=1.0,
        spherical=False,
        squares=False,
        classes=True,
        edges=None,
        left=True,
        keep=keep,
    )
    return found_p, class_stats, found


def _oracle(probs: np.ndarray, labels: np.ndarray, keep: int) -> tuple:
    n, classes = probs.shape
    y = labels % classes
    p = probs[np.arange(n), y].astype(np.float64)
    order = np.lexsort((np.arange(n), p))[:keep]  # smallest p, earlier rows on ties
    with np.errstate(divide="ignore"):
        logs = np.where(p > 0, _row_kernels.log_positive(np.where(p > 0, p, 1.0)), -np.inf)
    counts = np.bincount(y, minlength=classes).astype(np.float64)
    sums = np.bincount(y, weights=-logs, minlength=classes)
    return p[order], np.stack([counts, sums]), order


def _check(probs: np.ndarray, labels: np.ndarray, keep: int) -> None:
    found_p, class_stats, found = _kernel(probs, labels, keep)
    want_p, want_stats, want_rows = _oracle(probs, labels, keep)
    np.testing.assert_array_equal(class_stats, want_stats)  # bit for bit: row order
    rows = found[found >= 0]
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_array_equal(found_p, want_p)
    assert np.count_nonzero(found < 0) == max(0, keep - probs.shape[0])


@pytest.mark.parametrize("classes", [1, 3, 10, 65])
@pytest.mark.parametrize("rows", [1, 7, 256, 1000, 3000])
@pytest.mark.parametrize("keep", [1, 10, 300])
def test_issue13_class_sums_and_kept_rows_equal_the_oracle(
    classes: int, rows: int, keep: int
) -> None:
    probs, labels = _rows(rows, classes, seed=rows * 7 + classes)
    _check(probs, labels, keep)


@pytest.mark.parametrize("keep", [1, 5])
def test_issue13_kept_rows_found_late_and_on_ties(keep: int) -> None:
    """The smallest rows in the last chunks (every earlier chunk passed over), one
    tying the last kept value (it must not enter: earlier rows first), zeros."""
    probs, labels = _rows(5000, 4, seed=keep)
    labels = np.abs(labels) % 4
    rows = np.arange(5000)
    probs[:, :] = 0.25
    probs[rows % 97 == 3] = [0.1, 0.3, 0.3, 0.3]  # a tie class, spread over chunks
    probs[4100] = [0.0, 0.5, 0.25, 0.25]
    probs[4990] = [0.05, 0.35, 0.3, 0.3]
    probs[4999] = [0.0, 0.5, 0.25, 0.25]  # ties row 4100: after it
    labels[[4100, 4990, 4999]] = 0
    labels[rows % 97 == 3] = 0
    _check(probs, labels, keep)
    _, _, found = _kernel(probs, labels, keep)
    assert found[0] == 4100
    if keep > 1:
        assert found[1] == 4999
        assert found[2] == 4990


def _surprisal(p: np.ndarray) -> np.ndarray:
    """-log p as the kernel sums it: +inf at 0, -inf at +inf, NaN at NaN."""
    finite = np.isfinite(p) & (p > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(finite, _row_kernels.log_positive(np.where(finite, p, 1.0)), np.log(p))
    return -logs


@pytest.mark.parametrize("order", ["ascending", "descending", "random", "late"])
@pytest.mark.parametrize("keep", [1, 33, 300, 1000, 1500])
def test_issue13_kept_rows_sorted_and_merged_equal_the_oracle(order: str, keep: int) -> None:
    """Guard of the kept rows' order for every ``keep`` (insertion up to 32 places,
    sort and merge above, in row order until filled, keep > rows), against
    ``sorted(range(n), key=(-s, row))`` without NaN: many ties, 0 (+inf), +inf
    (-inf), NaN, above 1 (negative), rows ascending, descending, shuffled across
    256-row chunks, and a few tied rows a chunk above every filled place ("late").
    Passes on main (insertion, right but O(rows x keep)); kills (tests/MUTATION.md) an
    unstable sort (quicksort: ties swapped), a chunk's row put before a kept row of its
    surprisal, ties swapped by the in-place insertion of a few rows, a NaN kept, the
    merge's truncation one place short and a block never filled left unsorted."""
    rng = np.random.default_rng(keep)
    rows = 1000
    p = rng.choice(np.float32([0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 0.0, np.inf, np.nan]), rows)
    p[rng.random(rows) < 0.3] = np.float32(rng.random())  # one more tie value
    if order == "late":  # every place filled by ties, then a few tied rows a chunk above
        p[:] = 0.5
        p[300::50], p[310::70] = 0.25, 0.125
    elif order != "random":
        p = np.sort(p)[:: 1 if order == "ascending" else -1].copy()  # NaN at one end
    probs = p[:, None].astype(np.float32)
    labels = np.zeros(rows, dtype=np.intp)
    s = _surprisal(probs[:, 0].astype(np.float64))
    want = sorted((i for i in range(rows) if not np.isnan(s[i])), key=lambda i: (-s[i], i))
    found_p, _, found = _kernel(probs, labels, keep)
    got = found[found >= 0]
    np.testing.assert_array_equal(got, want[:keep])
    np.testing.assert_array_equal(found_p, probs[got, 0].astype(np.float64))
