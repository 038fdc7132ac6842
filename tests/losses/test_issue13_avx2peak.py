"""Issue 13, default install on AVX2 (``EXACT_ALL`` off): the leaner confident-row path.

``_numpy_kernels._direct_rest`` on a block whose rows are all guessed confident takes
them without row copies (``_direct_part(which=None)``), fewer calls when every row is
usable (one threshold per row, ``out`` written whole), and ``_significant_sums``'
float64 :math:`e^{x_c}` of the significant entries scaled by the row's :math:`e^{-t}`,
summed by ``reduceat`` over flat arrays (a row without any significant entry: 0).
Checked against an independent truth (``math.fsum`` of float64 terms, ``math.log1p``)
on hard rows in blocks of several rows: near-ties, spreads across float32's whole range
(maxima near 88.7 and near -60), ``-inf`` entries, V = 2, V = 256000, the mass split
across several entries at the float32 ``exp``'s worst argument, a second threshold in
an all-usable block, and a row guessed confident that is not, beside confident ones.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from crossent.losses import _cpu_kernels, _numpy_kernels
from crossent.losses._kernel_inputs import StatisticsOptions

F32 = np.float32
#: the direct path's bound on ell's relative error (see _numpy_kernels._direct_rest)
RTOL = 2.13e-7 / 8


@pytest.fixture(autouse=True)
def avx2_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Numba, and the float32 passes of AVX2 machines (no ``EXACT_ALL``)."""
    monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
    monkeypatch.setattr(_numpy_kernels, "EXACT_ALL", False)


def _ell_truth(z: np.ndarray) -> np.ndarray:
    """log1p(rho), rho = fsum of e^(x - max) over all but the first maximal entry."""
    out = []
    for row in z.astype(np.float64):
        with np.errstate(invalid="ignore"):
            terms = np.exp(np.delete(row, np.argmax(row)) - row.max())
        out.append(math.log1p(math.fsum(terms[terms > 0])))
    return np.asarray(out)


def _ell(z: np.ndarray, rows_per_block: int, monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    monkeypatch.setattr(_numpy_kernels, "BLOCK_ELEMENTS", rows_per_block * z.shape[1])
    labels = np.zeros(len(z), dtype=np.intp)
    _, ell, _, _, suspect = _numpy_kernels.row_statistics(z, labels, StatisticsOptions())
    assert not suspect.any()
    return ell


def _worst_exp_argument(low: float, high: float) -> F32:
    """The float32 x in (low, high) whose float32 ``exp`` is furthest from e^x."""
    x = np.linspace(low, high, 1_000_000, dtype=F32)
    exact = np.exp(x.astype(np.float64))
    return F32(x[np.argmax(np.abs(np.exp(x).astype(np.float64) - exact) / exact)])


def _split_mass_row(classes: int, top: float, pieces: int, rho: float) -> np.ndarray:
    """A confident row whose rho is split evenly among ``pieces`` entries, each at the
    float32 ``exp``'s worst argument relative to the maximum (off the guess's stride),
    the rest far below."""
    worst = _worst_exp_argument(-12.0, -6.0)
    shift = F32(top) - F32(round(float(worst - math.log(rho / pieces)), 0))
    row = np.full(classes, F32(top) - 200, dtype=F32)
    places = np.arange(1, classes)[np.arange(1, classes) % _numpy_kernels.GUESS_STRIDE != 0]
    row[places[:pieces]] = worst + shift
    row[0] = top
    return row


def _hard_block(classes: int, rng: np.random.Generator) -> np.ndarray:
    """Confident rows (all usable): near-ties, huge spreads, -inf, split masses, and
    a flat row (for V = 32000 no entry of it passes the first threshold: an empty
    segment between others)."""
    rows = []
    for top in (88.5, 87.9, 30.0, 0.0, -20.0, -59.0):  # e^-t from 3e-39 to 4e25
        row = (rng.normal(size=classes) * 3 + top - 16).astype(F32)
        row[rng.integers(classes)] = top
        rows.append(row)
    tie = rows[2].copy()
    tie[np.argmax(tie) - 1] = np.nextafter(tie.max(), F32(-np.inf))  # a near-tie
    rows.append(tie)
    spread = rows[4].copy()
    spread[::5] = F32(-1e30)  # a spread across the whole range
    spread[1::7] = -np.inf
    spread[np.argmax(rows[4])] = rows[4].max()
    rows.append(spread)
    flat = np.full(classes, F32(-1.0))  # equal terms: none significant beyond 16385
    flat[classes // 2] = 12.0
    rows.insert(0, flat)  # before the row of largest e^x: garbage there is loud
    rows.append(_split_mass_row(classes, 40.0, 5, 1e-3))
    rows.append(_split_mass_row(classes, -10.0, 3, 2.0))  # rho near EXACT_BELOW - 1
    return np.stack(rows).astype(F32)


@pytest.mark.parametrize("classes", [257, 4096, 32000])
@pytest.mark.parametrize("rows_per_block", [1, 3, 16])
def test_issue13_avx2peak_hard_confident_blocks(
    classes: int, rows_per_block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    z = _hard_block(classes, np.random.default_rng(classes))
    assert (np.exp(_ell_truth(z)) < _numpy_kernels.EXACT_BELOW).all()  # all confident
    np.testing.assert_allclose(_ell(z, rows_per_block, monkeypatch), _ell_truth(z), rtol=RTOL)


def test_issue13_avx2peak_two_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    """V = 2: rho is one term (no averaging of exp errors), at the worst arguments, ties
    and near-ties, at the range's edges."""
    worst = [_worst_exp_argument(lo, lo + 2.0) for lo in (-20.0, -10.0, -8.0, -2.0)]
    pairs = []
    for top in (88.6, 0.0, -60.0):
        for w in worst:
            pairs.append([F32(top), F32(top) + w])
        pairs.append([F32(top), F32(top)])  # a tie: rho = 1
        pairs.append([F32(top), np.nextafter(F32(top), F32(-np.inf))])
        pairs.append([F32(top), F32(-np.inf)])  # rho = 0
    z = np.asarray(pairs, dtype=F32)
    np.testing.assert_allclose(_ell(z, 4, monkeypatch), _ell_truth(z), rtol=RTOL, atol=0)


def test_issue13_avx2peak_largest_vocabulary(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(11)
    z = (rng.normal(size=(3, 256000)) * 3).astype(F32)
    z[0, 17], z[1, 255999], z[2, 1000] = 40.0, 30.0, 88.0
    z[2, ::3] = -np.inf
    np.testing.assert_allclose(_ell(z, 3, monkeypatch), _ell_truth(z), rtol=RTOL, atol=0)


def test_issue13_avx2peak_second_threshold_in_an_all_usable_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A crowded row (its small terms weigh half of rho: the second threshold) between
    rows the first threshold settles, every row usable: only the crowded row is taken
    again, and each row keeps its own rho."""
    classes = 32000
    small = _worst_exp_argument(-6.0, -4.0)
    top = F32(small - math.log(1e-3 / 2 / (classes - 2)))
    crowded = np.full(classes, small, dtype=F32)
    crowded[0], crowded[1] = top, F32(top + math.log(1e-3 / 2))
    others = _hard_block(classes, np.random.default_rng(2))[[1, 4, 9]]
    z = np.stack([others[0], crowded, others[1], others[2]])
    calls: list[int] = []
    significant_sums = _numpy_kernels._significant_sums

    def counting(
        rows: np.ndarray, e: np.ndarray, tau: np.ndarray, mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        calls.append(int(np.isfinite(tau).sum()))
        return significant_sums(rows, e, tau, mask)

    monkeypatch.setattr(_numpy_kernels, "_significant_sums", counting)
    np.testing.assert_allclose(_ell(z, 4, monkeypatch), _ell_truth(z), rtol=RTOL, atol=0)
    assert calls == [4, 1]


def test_issue13_avx2peak_wrong_guess_beside_confident_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A block guessed confident whole, one row of which is not (s about 4.7, its large
    terms off the guess's stride): that row ends with _exp_sum32's formula (the float64
    path's, to 1e-10), the others with the direct path's accuracy."""
    classes = 4096
    missed = np.full(classes, -30.0, dtype=F32)
    missed[0] = 8.0
    off = np.arange(classes)
    off = off[off % _numpy_kernels.GUESS_STRIDE != 0][1:21]
    missed[off] = F32(0.75 + 3 * 2.0**-24)
    missed[off[:10]] = _worst_exp_argument(6.9, 7.1)
    z = np.stack([*_hard_block(classes, np.random.default_rng(4))[:3], missed])
    assert _numpy_kernels._likely_confident(z, z.max(axis=1, keepdims=True)).all()
    fast = _ell(z, 4, monkeypatch)
    monkeypatch.setattr(_numpy_kernels, "FLOAT32_PASSES", False)
    wide = _ell(z, 4, monkeypatch)
    assert math.exp(wide[3]) >= _numpy_kernels.EXACT_BELOW  # not confident
    np.testing.assert_allclose(fast[3], wide[3], rtol=1e-10, atol=0)
    np.testing.assert_allclose(fast[:3], _ell_truth(z[:3]), rtol=RTOL, atol=0)
