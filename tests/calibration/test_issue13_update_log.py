"""Issue 13, ``EvaluationState.update``'s entropy: what its bits and accuracy rest on.

The entropy is the update kernel's costliest stage (a logarithm an entry,
``_row_kernels_numba.entropy_terms``), the first place to look for speed, and a cheaper
logarithm changes the total's last bits.  What the suite pins about those bits:

* determinism: the entropy total is the same bits whatever the threads, and in a
  process that compiled the kernels or loaded them from Numba's cache
  (test_issue13_deterministic_sums, test_issue13_folded_entropy: each rebuilds the
  total from ``entropy_terms``' own terms, so any elementwise logarithm keeps them);
* the logarithm's formula: test_issue13_vector_log's division check holds the terms to
  ``x * log_positive(x)`` (fdlibm's, with its vector division), and
  test_issue13_log_reduction holds ``log_positive`` to the previous range reduction's
  bits: golden values of the present formula, which a more accurate logarithm may move.

This file holds what any logarithm must keep.  Each entry's term must not depend on
where the entry lies in the chunk (the vectorised body or the remainder of the loop, a
block's first or last rows): otherwise the same rows' entropy would change with the
block boundaries.  And the entropy total must stay within 2 ulps of the exact one
(mpmath) on hard rows: entries near 0, float32 subnormals, exact 0 and 1, entries just
below 1, near-uniform and wide rows of 1000 classes.  Measured with fdlibm's
logarithm: within 0.6 ulp of the exact total in every case here (``math.fsum`` of the C
library's ``math.log`` terms: the same errors), the mean within 1 ulp.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import crossent

pytest.importorskip("numba")


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _pool(dtype: type, classes: int) -> np.ndarray:
    """A few hard rows (as ``dtype``), each a valid distribution."""
    rng = np.random.default_rng(1313)
    f = np.finfo(dtype)
    rows = [
        _softmax(rng.normal(size=(8, classes)) * 2),  # typical
        _softmax(rng.normal(size=(8, classes)) * 25),  # entries down to 1e-30 and below
        _softmax(rng.normal(size=(4, classes)) * 0.01),  # near-uniform
    ]
    one_hot = np.zeros((2, classes))
    one_hot[0, 0] = one_hot[1, classes - 1] = 1.0  # exact 0 and 1: entropy exactly 0
    rows.append(one_hot)
    tiny = np.zeros((3, classes))  # subnormal entries beside one near 1
    tiny[:, 1:] = float(f.smallest_subnormal) * rng.integers(1, 1000, size=(3, classes - 1))
    tiny[:, 0] = 1.0 - tiny[:, 1:].sum(axis=1)
    rows.append(tiny)
    near_one = np.zeros((3, classes))  # 1 - 2^-k beside 2^-k
    for r, k in enumerate((20, 23, 24 if dtype == np.float32 else 53)):
        near_one[r, 0], near_one[r, 1 + r % (classes - 1)] = 1.0 - 2.0**-k, 2.0**-k
    rows.append(near_one)
    return np.concatenate(rows).astype(dtype)


def _exact_entropy(rows: np.ndarray) -> list[mpmath.mpf]:
    with mpmath.workprec(160):
        return [
            -mpmath.fsum(
                mpmath.mpf(float(p)) * mpmath.log(mpmath.mpf(float(p)))
                for p in row.astype(np.float64)
                if p > 0
            )
            for row in rows
        ]


@pytest.mark.parametrize(
    ("dtype", "classes", "n"),
    [(np.float32, 10, 300_000), (np.float64, 10, 150_000), (np.float32, 1000, 3000)],
)
def test_issue13_update_entropy_within_two_ulps_of_mpmath(
    dtype: type, classes: int, n: int
) -> None:
    pool = _pool(dtype, classes)
    rng = np.random.default_rng(classes)
    pick = rng.integers(0, pool.shape[0], size=n)
    probs = pool[pick]  # several blocks of rows (so several threads' blocks)
    labels = rng.integers(0, classes, size=n)
    got = crossent.EvaluationState(classes).update(probs, labels).compute().mean_entropy
    exact_rows = _exact_entropy(pool)
    counts = np.bincount(pick, minlength=pool.shape[0])
    with mpmath.workprec(160):
        exact = float(mpmath.fsum(int(c) * e for c, e in zip(counts, exact_rows, strict=True)) / n)
    error = abs(got - exact) / math.ulp(exact)
    assert error <= 2.0, (got, exact, error)


def test_issue13_update_entropy_of_certain_rows_is_exactly_zero() -> None:
    probs = np.zeros((5000, 10), dtype=np.float32)
    probs[np.arange(5000), np.arange(5000) % 10] = 1.0
    state = crossent.EvaluationState(10).update(probs, np.arange(5000) % 10)
    assert state.compute().mean_entropy == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_issue13_entropy_terms_do_not_depend_on_the_entry_position(dtype: type) -> None:
    """Each entry's term is ``x * log_positive(x)`` (0 for x = 0) bit for bit, whether
    it falls in the vectorised body of ``entropy_terms``' loop or in its remainder, at
    any start and count (a chunk's place in a block)."""
    import numba

    from crossent.calibration import _row_kernels
    from crossent.calibration import _row_kernels_numba as kernels

    # called from compiled code, with the flags of the kernels that inline it (the
    # loop is compiled without reference counting: many calls straight from Python
    # abort the interpreter)
    @numba.njit(fastmath=kernels._FLAGS)
    def entropy_terms(values: np.ndarray, start: int, count: int, terms: np.ndarray) -> None:
        kernels.entropy_terms(values, start, count, terms)

    rng = np.random.default_rng(7)
    f = np.finfo(dtype)
    values = np.concatenate(
        [
            _softmax(rng.normal(size=(40, 10)) * 6).ravel(),
            [0.0, 1.0, float(f.tiny), float(f.smallest_subnormal), 1.0 - float(f.eps)],
            np.exp(-rng.random(200) * 80.0),
            1.0 - rng.integers(1, 64, size=60) * float(f.eps) / 2,
        ]
    ).astype(dtype)
    rng.shuffle(values)
    wide = values.astype(np.float64)
    expected = np.where(wide > 0, wide * _row_kernels.log_positive(np.where(wide > 0, wide, 1)), 0)
    terms = np.empty(values.size)
    # every entry in the loop's remainder (counts not a multiple of 4), and chunks
    # whose body covers a few vectors at every alignment
    spans = [(start, count) for count in (1, 2, 3, 7) for start in range(values.size - count)]
    spans += [
        (start, count) for start in range(9) for count in (63, 64, 65, 255, values.size - start)
    ]
    for start, count in spans:
        terms[:count] = np.nan
        entropy_terms(values, start, count, terms)
        got, want = terms[:count], expected[start : start + count]
        differ = np.nonzero(got.view(np.int64) != want.view(np.int64))[0]
        assert differ.size == 0, (start, count, differ[:5], got[differ[:5]], want[differ[:5]])
