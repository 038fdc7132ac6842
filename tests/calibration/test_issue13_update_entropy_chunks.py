"""Issue 13, evaluation speed on Zen 4 (branch evalamd1): ``totals`` with the entropy.

Before, a state with the entropy took long rows in chunks of at most ``_CHUNK_ENTRIES``
(4096) entries for every stage (4 rows at 1000 classes: 25000 chunks for 10^5 rows,
each some ten calls), where a state without it takes chunks of 32768 entries.  Now
the entropy alone is taken in those small parts (its terms buffered in cache), and
every other stage a chunk of the entropy-free size at a time wherever the parts tile
it, so that:

* the entropy's sum keeps its bits (compensated part by part as before: the kernel's
  own terms folded in 256 lanes, rebuilt here), clean parts and parts with a suspect
  row (``validate=False``: each row's entropy clipped at 0) alike;
* every other number is the bits of a state without the entropy (before: another
  order of the same sums, an ulp or so apart), at 64, 1000 and 3000 classes (parts
  of 64, 4 and 1 rows tile chunks of 256, 32 and 10); at 100 classes (parts of 40
  rows, chunks of 256: no tiling) nothing changed (benchmarks/check_update_bits.py);
* the mean entropy of hard rows (float32 subnormals, tiny entries, zeros, an entry
  next to 1) stays within 2 ulps of mpmath's (a guard: the logarithm is unchanged).

The first test fails on main (the numbers of a state with the entropy an ulp from
those of a state without it); the others are guards that pass on main.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent
from crossent.calibration import _row_kernels
from crossent.calibration._row_kernels import _CHUNK_ENTRIES, _PART_ROWS

from .test_issue13_folded_entropy import _compensated_sum, _entropy_sum, _folded_reference

mpmath = pytest.importorskip("mpmath")
pytest.importorskip("numba")


def _probs(rows: int, classes: int, dtype: type, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(classes, 0.3), size=rows)
    return probs.astype(dtype), rng.integers(0, classes, size=rows)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("rows", "classes"), [(700, 64), (150, 1000), (40, 3000)])
def test_issue13_entropy_leaves_every_other_number_alone(
    dtype: type, rows: int, classes: int
) -> None:
    probs, labels = _probs(rows, classes, dtype, seed=classes)
    states = [crossent.EvaluationState(classes, entropy=e, keep=5) for e in (True, False)]
    for state in states:
        state.update(probs, labels)
    full, without = states
    np.testing.assert_array_equal(full._sums[[0, 1, 2, 4]], without._sums[[0, 1, 2, 4]])
    np.testing.assert_array_equal(full._class_surprisal, without._class_surprisal)
    for a, b in zip(full._bins.arrays(), without._bins.arrays(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert full._surprising == without._surprising


@pytest.mark.parametrize("dirty", [False, True])
def test_issue13_entropy_sum_keeps_its_parts(dirty: bool) -> None:
    """The entropy's bits, part by part (4 rows at 1000 classes), rebuilt from the
    kernel's own terms; ``dirty``: rows 9 and 41 sum to 0.6 and 2 (suspect with
    ``limit`` 1e-3), so that their chunks' parts take each row's entropy clipped at 0
    (-2 log 2 + ... for the row of 2), and the other parts of those chunks their fold."""
    from crossent.calibration._row_kernels_numba import entropy_terms

    classes = 1000
    values, labels = _probs(70, classes, np.float32, seed=3)
    if dirty:
        values[9] *= np.float32(0.6)
        values[41] = 0.0
        values[41, 0] = 2.0
    part = min(_PART_ROWS, max(1, _CHUNK_ENTRIES // classes))
    flat = values.reshape(-1)
    parts = []
    for e0 in range(0, len(values), part):
        e1 = min(e0 + part, len(values))
        terms = np.empty((e1 - e0) * classes)
        entropy_terms(flat, e0 * classes, terms.size, terms)
        if dirty and (e0 <= 9 < e1 or e0 <= 41 < e1):  # each row's, clipped, as a tree
            entropy = _tree_of_row_entropies(values[e0:e1])
        else:
            entropy = 0.0 - _folded_reference(terms, 256)
        parts.append(entropy)
    expected = _compensated_sum(parts)
    got = _entropy_sum(values, labels)
    assert np.float64(got).view(np.int64) == np.float64(expected).view(np.int64)


def _tree_of_row_entropies(rows: np.ndarray) -> float:
    """A suspect part's entropy: each row's (the kernel's own per-row sums, from
    ``row_summaries``) clipped at 0, summed as a pairwise tree."""
    *_, entropy = _row_kernels.row_summaries(
        rows, np.zeros(len(rows), dtype=np.intp), top=False, entropy=True, limit=1e-3
    )
    assert entropy is not None
    level = np.zeros(1 << max(0, (len(rows) - 1).bit_length()))
    level[: len(rows)] = np.maximum(entropy, 0.0)
    while level.size > 1:
        level = level[: level.size // 2] + level[level.size // 2 :]
    return float(level[0])


def test_issue13_mean_entropy_of_hard_rows_against_mpmath() -> None:
    """1000 classes, float32: subnormal entries (1e-42), tiny ones (1e-30), zeros
    (0 log 0 = 0), rows with one entry 1 - 2^-24 (the rest shared), a uniform row; the
    state's mean entropy within 2 ulps of mpmath's at 50 digits."""
    classes, rng = 1000, np.random.default_rng(8)
    rows = []
    for kind in range(12):
        p = rng.dirichlet(np.full(classes, 0.2)).astype(np.float32)
        if kind % 4 == 0:
            p[rng.random(classes) < 0.3] = np.float32(1e-42)  # subnormal
        elif kind % 4 == 1:
            p[rng.random(classes) < 0.3] = np.float32(1e-30)
        elif kind % 4 == 2:
            p[rng.random(classes) < 0.5] = 0.0
        else:
            p = np.full(classes, np.float32(2.0**-24 / (classes - 1)), dtype=np.float32)
            p[kind % classes] = np.float32(1.0 - 2.0**-24)
        rows.append(p)
    rows.append(np.full(classes, np.float32(1.0 / classes), dtype=np.float32))
    probs = np.array(rows)
    probs /= probs.sum(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)
    labels = rng.integers(0, classes, size=len(probs))
    state = crossent.EvaluationState(classes).update(probs, labels, validate=False)
    got = state.compute().mean_entropy
    with mpmath.workdps(50):
        exact = mpmath.fsum(
            -mpmath.mpf(float(x)) * mpmath.log(mpmath.mpf(float(x)))
            for x in probs.reshape(-1)
            if x > 0
        ) / len(probs)
    assert got is not None
    assert abs(mpmath.mpf(got) - exact) <= 2 * math.ulp(float(exact))
