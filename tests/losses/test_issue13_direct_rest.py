"""Issue 13, default install on AVX2 (``EXACT_ALL`` off): ``_numpy_kernels._direct_rest``.

A confident row (exp-sum s below 4) takes the float32 ``exp`` of the logits
themselves, and a float64 ``exp`` only for its significant entries (``SIGNIFICANT``
of the row's sum or more); the float32 terms of the others may carry at most
``INSIGNIFICANT_SHARE`` of rho = s - 1, else a second pass with a threshold low
enough. Which path a row takes first is guessed (``_likely_confident``); a row that
is not confident always ends with ``_exp_sum32``'s formula, the float64 path's.
Checked against an independent truth (``math.fsum`` of float64 terms, ``math.log1p``)
on rows the selection must get right: many small terms that together weigh half of
rho at the float32 ``exp``'s worst arguments, a confident row whose terms are all
too small to be significant beside a confident one (reduceat's empty segment), the
range's edges, rho near 1e-30, ties, ``-inf`` entries, V = 2 and V = 256000, and rows
guessed confident that are not.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent
from crossent.losses import _cpu_kernels, _numpy_kernels
from crossent.losses._kernel_inputs import StatisticsOptions

F32 = np.float32


@pytest.fixture(autouse=True)
def avx2_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Numba, and the float32 passes of AVX2 machines (no ``EXACT_ALL``)."""
    monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
    monkeypatch.setattr(_numpy_kernels, "EXACT_ALL", False)


def _rest_truth(z: np.ndarray) -> np.ndarray:
    """rho = sum of e^(x - max) over all but the first maximal entry, by fsum."""
    z64 = z.astype(np.float64)
    rests = []
    for row in z64:
        with np.errstate(invalid="ignore"):
            terms = np.exp(np.delete(row, np.argmax(row)) - row.max())
        rests.append(math.fsum(terms[terms > 0]))
    return np.asarray(rests)


def _worst_exp_argument(low: float, high: float) -> F32:
    """The float32 x in (low, high) whose float32 ``exp`` is furthest from e^x."""
    x = np.linspace(low, high, 1_000_000, dtype=F32)
    exact = np.exp(x.astype(np.float64))
    return F32(x[np.argmax(np.abs(np.exp(x).astype(np.float64) - exact) / exact)])


def _ell(z: np.ndarray) -> np.ndarray:
    labels = np.zeros(len(z), dtype=np.intp)
    _, ell, _, _, suspect = _numpy_kernels.row_statistics(z, labels, StatisticsOptions())
    assert not suspect.any()
    return ell


def _crowded_row(classes: int) -> np.ndarray:
    """A confident row whose insignificant terms weigh half of rho: one term of half
    rho, and classes - 2 equal ones of rho / (2 (classes - 2)) each (under the first
    threshold), at the float32 ``exp``'s worst argument."""
    small = _worst_exp_argument(-6.0, -4.0)
    # small - top: e^(small - top) (classes - 2) = rho / 2 with rho = 1e-3
    top = F32(small - math.log(1e-3 / 2 / (classes - 2)))
    medium = F32(top + math.log(1e-3 / 2))
    row = np.full(classes, small, dtype=F32)
    row[0], row[1] = top, medium
    return row


def _no_exact_rest(*args: object, **kwargs: object) -> None:
    raise AssertionError("_exact_rest was called")


def test_issue13_crowded_row_takes_the_second_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Half of rho in terms under the first threshold: the float32 terms would move
    rho by up to 1e-7 of itself; the second pass keeps it within the bound (and the
    row is not redone whole)."""
    monkeypatch.setattr(_numpy_kernels, "_exact_rest", _no_exact_rest)
    classes = 32000
    row = _crowded_row(classes)
    ell = _ell(row[None])[0]
    truth = math.log1p(_rest_truth(row[None])[0])
    assert abs(ell - truth) <= 2.13e-7 / 8 * truth + 1e-16
    # the first threshold alone would not do: the float32 terms err this much
    e = np.exp(row[2:]).astype(np.float64) * math.exp(-float(row[0]))
    exact = np.exp(row[2:].astype(np.float64) - float(row[0]))
    assert abs(e.sum() - exact.sum()) > 2.13e-7 / 8 * truth


def test_issue13_all_insignificant_row_beside_a_confident_one() -> None:
    """A confident row whose non-maximal terms are all equal and each under the first
    threshold (no significant entry: an empty segment), in one block with another
    confident row: each row's rho is its own."""
    classes = 32000
    flat = np.full(classes, -1.0, dtype=F32)
    flat[5] = 12.0  # rho = 31999 e^-13, about 0.07
    other = np.full(classes, -3.0, dtype=F32)
    other[7], other[8] = 20.0, 15.5
    z = np.stack([flat, other, flat[::-1].copy()])
    truth = np.log1p(_rest_truth(z))
    np.testing.assert_allclose(_ell(z), truth, rtol=2.13e-7 / 8, atol=0)


def _hard_rows(classes: int, rng: np.random.Generator) -> np.ndarray:
    rows = []
    for top in (-39.9, -3.0, 0.0, 41.7, 87.9, 88.5, -45.0, 120.0):  # in range and out
        for gap in (0.05, 1.5, 9.0, 30.0, 69.0):  # rho from about V to 1e-30 (V = 2)
            row = (rng.normal(size=classes) * 3 + top - gap - 12).astype(F32)
            row[rng.integers(classes)] = top
            rows.append(row)
    tie = rows[2].copy()
    tie[np.argmax(tie) - 1] = tie.max()  # a tie of the maximum
    masked = rows[3].copy()
    masked[1::3] = -np.inf  # -inf among confident logits
    return np.stack([*rows, tie, masked]).astype(F32)


@pytest.mark.parametrize("classes", [2, 3, 257, 32000])
def test_issue13_direct_rows_within_two_ulps(classes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-row losses (label at the maximum: the loss is ell) within 2 float32 ulps,
    in blocks of a few rows (guesses, wrong guesses and both orders of the paths)."""
    monkeypatch.setattr(_numpy_kernels, "BLOCK_ELEMENTS", 3 * classes)
    rng = np.random.default_rng(classes)
    z = _hard_rows(classes, rng)
    labels = z.argmax(axis=1)
    got = np.asarray(crossent.softmax_cross_entropy(z, labels, reduction="none"))
    truth = np.log1p(_rest_truth(z))
    assert got.dtype == F32
    ulps = np.abs(got - truth) / np.spacing(np.abs(truth).astype(F32))
    assert ulps.max() <= 2.0, (ulps.max(), int(ulps.argmax()))


def test_issue13_direct_rows_largest_vocabulary() -> None:
    rng = np.random.default_rng(5)
    z = (rng.normal(size=(2, 256000)) * 3).astype(F32)
    z[0, 17] = 40.0  # rho about 2e-5
    z[1, 255999] = 30.0  # rho about 1
    truth = np.log1p(_rest_truth(z))
    np.testing.assert_allclose(_ell(z), truth, rtol=2.13e-7 / 8, atol=0)


def _missed_rows(classes: int) -> np.ndarray:
    """Rows that are not confident (s about 4.7), their large terms off every
    ``GUESS_STRIDE``-th place: guessed confident. Their terms are at the float32
    ``exp``'s worst argument x (``_direct_rest``'s e^x off by about 2e-7), and some
    x - max inexact in float32 with errors of one sign (0.75 + 3 ulps against 8), so
    that only ``_exp_sum32``'s formula agrees with the float64 path to 1e-10."""
    rows = np.full((4, classes), -30.0, dtype=F32)
    rows[:, 0] = 8.0
    off = np.arange(classes)
    off = off[off % _numpy_kernels.GUESS_STRIDE != 0][1:21]
    rows[:, off] = F32(0.75 + 3 * 2.0**-24)  # e^-7.25 each: 20 of them, s about 1.01
    rows[:, off[:10]] = _worst_exp_argument(6.9, 7.1)  # about e^-1 each: s about 4.7
    return rows


def test_issue13_wrongly_guessed_rows_take_the_float64_paths_formula(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    classes = 4096
    z = _missed_rows(classes)
    assert _numpy_kernels._likely_confident(z, z.max(axis=1, keepdims=True)).all()
    labels = np.zeros(len(z), dtype=np.intp)
    fast = _numpy_kernels.row_statistics(z, labels, StatisticsOptions())
    monkeypatch.setattr(_numpy_kernels, "FLOAT32_PASSES", False)
    wide = _numpy_kernels.row_statistics(z, labels, StatisticsOptions())
    np.testing.assert_allclose(fast[1], wide[1], rtol=1e-10, atol=0)
    assert (np.exp(wide[1]) >= _numpy_kernels.EXACT_BELOW).all()  # not confident


def test_issue13_direct_rest_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """Confident rows take _direct_rest, not _exact_rest (the speed)."""
    monkeypatch.setattr(_numpy_kernels, "_exact_rest", _no_exact_rest)
    rng = np.random.default_rng(3)
    z = (rng.normal(size=(8, 5000)) * 3).astype(F32)
    z[np.arange(8), rng.integers(5000, size=8)] = 30.0
    _ell(z)


def test_issue13_infinite_maximum_is_not_taken_directly() -> None:
    """A +inf maximum (beside a confident row): its row is suspect with ell NaN, as
    ``_exact_rest`` gives; not the 0 of e^(x - inf)."""
    z = np.stack([_hard_rows(300, np.random.default_rng(1))[8], np.zeros(300, dtype=F32)])
    z[1, 3] = np.inf
    labels = np.zeros(len(z), dtype=np.intp)
    _, ell, _, _, suspect = _numpy_kernels.row_statistics(z, labels, StatisticsOptions())
    assert suspect.tolist() == [False, True]
    assert np.isnan(ell[1])
