r"""Issue 13: the table-driven ``exp`` of the forward's exp-sums on AVX-512 (``TABLE_EXP``).

On an AVX-512 target, ``exp_sum_and_next_max`` and ``exp_sum`` of
``losses/_cpu_kernels_numba.py`` are explicit LLVM vector code whose terms are
:math:`2^{\lfloor y \rfloor} \cdot 2^{j/16} \cdot p(f)` (``vreducepd``, an FMA rounded
down, ``vpermi2pd`` over :data:`EXP2_TABLE`, a degree-4 polynomial, ``vscalefpd``). These
tests pin, against mpmath: the table (correctly rounded), the polynomial's relative error
on :math:`[0, 1/16]` (2.81e-12, reached), every term's relative error over
:math:`[-708, 0]` (below 2.9e-12, with the ends of the reduction intervals, where
:math:`16 y` is an integer, included), the subnormal results and exact zeros below,
:math:`e^0 = 1`, :math:`e^{-\infty} = 0` and NaN; and the fused sums and next-row maxima
over hard rows (every length up to 70, so every tail; runs of ``-inf``, the maximum last,
a late NaN or ``+inf``, ``T = 2.5``, bfloat16 and float16 storage).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import mpmath
import numpy as np
import pytest

pytest.importorskip("numba")

import numba

from crossent.losses import _cpu_kernels_numba as kernels

pytestmark = pytest.mark.skipif(not kernels.TABLE_EXP, reason="the table exp is AVX-512 only")

#: the polynomial's relative error on [0, 1/16] (mpmath, 40 digits, float64 coefficients)
POLYNOMIAL_ERROR = 2.81e-12
#: a term's: the polynomial's, y = d log2(e) rounded (|d| <= 708: 8e-14), the table's
TERM_ERROR = 2.9e-12


@numba.njit
def _exp8(d):
    return kernels.table_exp8(d)


def _table_exp(d: np.ndarray) -> np.ndarray:
    """The kernel's e^d of every entry of the float64 array ``d``."""
    padded = np.concatenate([d, np.zeros(-len(d) % 8)])
    out = [_exp8(tuple(float(x) for x in padded[k : k + 8])) for k in range(0, len(padded), 8)]
    return np.array(out).ravel()[: len(d)]


def test_issue13_table_is_correctly_rounded() -> None:
    with mpmath.workdps(40):
        for j, entry in enumerate(kernels.EXP2_TABLE):
            assert entry == float(mpmath.power(2, mpmath.mpf(j) / 16)), j


def test_issue13_table_polynomial_keeps_its_documented_error() -> None:
    c = kernels.EXP2_COEFFICIENTS
    assert c[0] == 1.0  # e^0 = 1 exactly
    with mpmath.workdps(40):
        worst = mpmath.mpf(0)
        for i in range(2001):
            f = mpmath.mpf(i) / 32000
            p = mpmath.mpf(0)
            for coefficient in reversed(c):
                p = p * f + mpmath.mpf(coefficient)
            worst = max(worst, abs(p / mpmath.power(2, f) - 1))
    assert 0.98 * POLYNOMIAL_ERROR <= float(worst) <= POLYNOMIAL_ERROR, float(worst)


def _points() -> np.ndarray:
    rng = np.random.default_rng(13)
    uniform = -rng.uniform(0, 708, 3000)
    small = -np.exp(rng.uniform(math.log(1e-300), math.log(5.0), 1000))
    # where 16 d log2(e) is an integer (the ends of the reduction intervals), and next to it
    ends = -np.arange(0, 16 * 1021, 7) * (math.log(2) / 16)
    near = np.concatenate([ends, np.nextafter(ends, 0), np.nextafter(ends, -1)])
    floats = (-np.abs(rng.standard_normal(1000)) * 30).astype(np.float32).astype(np.float64)
    return np.concatenate([uniform, small, near, floats, [0.0, -0.0, -708.0, -5e-324]])


def test_issue13_table_exp_is_within_its_bound_on_normal_results() -> None:
    d = _points()
    got = _table_exp(d)
    worst = 0.0
    with mpmath.workdps(30):
        for x, value in zip(d, got, strict=True):
            truth = mpmath.exp(mpmath.mpf(float(x)))
            worst = max(worst, float(abs(mpmath.mpf(float(value)) / truth - 1)))
    assert worst <= TERM_ERROR, worst
    assert worst >= 0.9 * POLYNOMIAL_ERROR  # the bound is reached, not merely respected


def test_issue13_table_exp_special_values() -> None:
    got = _table_exp(np.array([0.0, -0.0, -np.inf, np.nan, -746.0, -1e5, -3.4e38, -1e300]))
    assert got[0] == 1.0
    assert got[1] == 1.0
    assert got[2] == 0.0
    assert np.isnan(got[3])
    assert np.all(got[4:] == 0.0)  # below half the smallest subnormal: 0, not garbage


def test_issue13_table_exp_subnormal_results() -> None:
    # e^d for d in [-745, -708]: the subnormals, within two of their units (two roundings)
    d = np.linspace(-745.1, -708.4, 997)
    got = _table_exp(d)
    tiny = 2.0**-1074
    with mpmath.workdps(30):
        for x, value in zip(d, got, strict=True):
            truth = mpmath.exp(mpmath.mpf(float(x)))
            limit = 2 * tiny + TERM_ERROR * float(truth)
            assert abs(float(mpmath.mpf(float(value)) - truth)) <= limit, x


@numba.njit(fastmath=kernels._FLAGS)
def _fused(row, following, top, inv_t):
    if inv_t != 1.0:
        s, bits = kernels.exp_sum_and_next_max(row, following, top, inv_t, True)
        return s, bits, kernels.exp_sum(row, top, inv_t, True)
    s, bits = kernels.exp_sum_and_next_max(row, following, top, inv_t, False)
    return s, bits, kernels.exp_sum(row, top, inv_t, False)


def _hard_row(kind: int, v: int, rng: np.random.Generator) -> np.ndarray:
    row = (rng.standard_normal(v) * 4).astype(np.float32)
    if kind == 1:  # rising, the maximum last
        row = np.sort(row)
    elif kind == 2:  # runs of -inf
        row[rng.random(v) < 0.5] = -np.inf
    elif kind == 3:  # a late NaN
        row[-1] = np.nan
    elif kind == 4:  # a late +inf
        row[-1] = np.inf
    elif kind == 5:  # far below the maximum (terms underflow) but for a few
        row -= 800
        row[v // 2] = 0
    return row


def _stored(row: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The row as the kernel stores it and the float32 values it decodes to."""
    if kind == "bf16":
        bits = (row.view(np.uint32) >> 16).astype(np.uint16)
        return bits, (bits.astype(np.uint32) << 16).view(np.float32)
    if kind == "fp16":
        half = row.astype(np.float16)
        return half.view(np.int16), half.astype(np.float32)
    return row, row


def _truth(values: np.ndarray, top: float, inv_t: float) -> float:
    """:math:`\\sum_x e^{(x - top) / T}` at 30 digits, each distinct value's exponential
    formed once and weighted by its count (exact: a count is an integer; a bfloat16 row of
    32000 has about 2200 distinct values, a float16 one 11000: CI time)."""
    distinct, counts = np.unique(values, return_counts=True)
    with mpmath.workdps(30):
        return float(
            mpmath.fsum(
                int(n) * mpmath.exp((mpmath.mpf(float(x)) - top) * inv_t)
                for x, n in zip(distinct, counts, strict=True)
            )
        )


def _float64_truth(values: np.ndarray, top: float, inv_t: float) -> tuple[float, float] | None:
    r""":func:`_truth` in float64 and a proven bound on its distance from :func:`_truth`,
    or None where ``x - top`` of some finite value is not exact in float64.

    Each term :math:`e^{a}`, :math:`a = (x - top)/T`: ``x - top`` exact (checked by Knuth's
    two-sum), ``a`` rounded (relative error :math:`u = 2^{-53}`, so the term's is
    :math:`|a| u`, taken as :math:`1.02 |a| u`), NumPy's ``exp`` within 4 ulps (relative
    :math:`2^{-50}`, taken as :math:`2^{-45}`; below the normal range
    :math:`4 \cdot 2^{-1074}` absolutely, taken as :math:`2^{-1071}`), the count's
    product rounded (:math:`u`), ``math.fsum`` correctly rounded (:math:`u` of the sum);
    :func:`_truth`'s 30 digits and its rounding to a float (:math:`10^{-25}` and
    :math:`u` of the sum); all doubled."""
    distinct, counts = np.unique(values, return_counts=True)
    x = distinct.astype(np.float64)[np.isfinite(distinct)]  # (-inf: a term of 0 in both)
    n = counts[np.isfinite(distinct)].astype(np.float64)
    d = x - top
    back = d - x
    if np.any((x - (d - back)) + (-top - back) != 0.0):
        return None
    a = d * inv_t
    terms = np.exp(a)
    weighted = n * terms
    total = math.fsum(weighted)
    u = 2.0**-53
    err = float(np.sum(weighted * (1.02 * np.abs(a) * u + 2.0**-45 + u) + n * 2.0**-1071))
    return total, 2.0 * (err + 2.0 * u * total + 1e-25 * total)


def _key(value: np.float32) -> int:
    """IEEE 754's total order of a float32 as an integer (the kernel's maximum)."""
    bits = int(np.array(value, np.float32).view(np.int32))
    return bits if bits >= 0 else -(bits & 0x7FFFFFFF) - 1


def sweep_hard_rows(
    function: Callable[..., tuple[float, int, float]],
    truth: Callable[[np.ndarray, float, float], float],
    limit: Callable[[int, float], float],
    storage: str,
    temperature: float,
    seed: int,
    screen: Callable[[np.ndarray, float, float], tuple[float, float] | None] | None = None,
) -> None:
    """``(s, bits, alone) = function(row, following, top, inv_t)`` (the fused exp-sum and
    next row's maximum's bits, and the exp-sum alone) on the hard rows of every length
    1-70, 1000 and 32000, stored as ``storage``: the maximum exactly, a NaN sum for a
    NaN or ``+inf`` row, else both sums within ``limit(v, truth)`` of ``truth(values,
    top, inv_t)``.

    ``screen`` (optional, ``limit`` increasing in the truth): ``(approx, err)`` with
    ``|approx - truth| <= err`` proven, or None. A row whose sums are within
    ``limit(v, approx - err) - err`` of ``approx`` is within ``limit(v, truth)`` of the
    truth, so it passes without ``truth``; any other row is checked against ``truth``
    as before (the verdicts are ``truth``'s: CI time, ``truth`` being mpmath's)."""
    rng = np.random.default_rng(seed)
    inv_t = 1.0 / temperature
    for v in [*range(1, 71), 1000, 32000]:
        for kind in range(6):
            row, values = _stored(_hard_row(kind, v, rng), storage)
            following, next_values = _stored(_hard_row((kind + 1) % 6, v, rng), storage)
            if storage == "float32":
                following = following.view(np.int32)
            top = float(np.nanmax(values)) if not np.isnan(values).all() else 0.0
            if top == -np.inf:  # a row of -inf: the kernel exponentiates nothing
                continue
            s, bits, alone = function(row, following, top, inv_t)
            expected = max(next_values, key=_key)
            assert _key(np.int32(bits).view(np.float32)) == _key(expected), (v, kind)
            if np.isnan(values).any() or top == np.inf:  # NaN, or +inf - +inf
                assert np.isnan(s), (v, kind)
                assert np.isnan(alone), (v, kind)
                continue
            screened = None if screen is None else screen(values, top, inv_t)
            if screened is not None:
                approx, err = screened
                if max(abs(s - approx), abs(alone - approx)) + err <= limit(v, approx - err):
                    continue
            exact = truth(values, top, inv_t)
            bound = limit(v, exact)
            assert abs(s - exact) <= bound, (v, kind, s, exact)
            assert abs(alone - exact) <= bound, (v, kind, alone, exact)


@pytest.mark.parametrize("storage", ["float32", "bf16", "fp16"])
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_issue13_table_fused_sums_and_maxima_on_hard_rows(storage: str, temperature: float) -> None:
    # TERM_ERROR per term, and the float64 sum's own rounding (v / 4 additions deep)
    def limit(v: int, truth: float) -> float:
        return (TERM_ERROR + v * 2.0**-53) * truth + 2.0**-1070

    sweep_hard_rows(_fused, _truth, limit, storage, temperature, seed=7, screen=_float64_truth)


@numba.njit(fastmath=kernels._FLAGS)
def _fused_only(row, following, top):
    return kernels.exp_sum_and_next_max(row, following, top, 1.0, False)


@numba.njit(fastmath=kernels._FLAGS)
def _sum_only(row, top):
    return kernels.exp_sum(row, top, 1.0, False)


def test_issue13_table_loop_refuses_strided_rows() -> None:
    # the loop reads a row as vectors: a strided row must not compile (no silent misreads)
    z = np.random.default_rng(3).standard_normal((2, 64)).astype(np.float32)
    with pytest.raises(numba.core.errors.TypingError):
        _fused_only(z[0, ::2], z[1].view(np.int32)[::2], 4.0)
    with pytest.raises(numba.core.errors.TypingError):
        _fused_only(z[0], z[1].view(np.int32)[::2], 4.0)
    with pytest.raises(numba.core.errors.TypingError):
        _sum_only(z[0, ::2], 4.0)
