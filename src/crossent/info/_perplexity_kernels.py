r"""The compiled kernel of :mod:`._perplexity_dd` (Numba): the perplexity of float64
probability rows from their entropy (or cross-entropy) in double-double, one pass an
entry, imported only when first needed (module level for Numba's on-disk cache, as in
``_fused_kernels``). The formulas are :mod:`._perplexity_dd`'s, the product's error by
one FMA, the terms' high parts summed by TwoSum (their errors added in the low part),
except ``exp``: the weights :math:`e^{d}` of logits and log-probabilities come from a
table (:func:`_exp_table`, about :math:`2^{-66}` relative) where the array code takes
``exp`` and its residual from an atanh series (``_double_double.exp_parts``, about
:math:`2^{-59}`): half the kernel's time on dense logits (branch ddone1), the same
bits to within the last place of a few results.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from numba import types

from .._double_double import ATANH_SERIES as _ATANH_SERIES
from .._double_double import LN2_HI as _LN2_HI
from .._double_double import LN2_LO as _LN2_LO
from .._double_double import exp_constants
from ._fused_kernels import _fma, _two_sum

__all__ = ["perplexity_rows"]

_SQRT_HALF = math.sqrt(0.5)
_SERIES = tuple(reversed(_ATANH_SERIES))
_INF = math.inf

_STEP_PAIRS = exp_constants()
_STEPS_HI = np.array(_STEP_PAIRS[0])
_STEPS_LO = np.array(_STEP_PAIRS[1])
r""":math:`2^{j/64}`, :math:`0 \le j < 64`, as pairs (:func:`_exp_table`)."""
_L1, _L2, _L3 = _STEP_PAIRS[2]
r""":math:`\ln 2/64` in three parts, the first two of 36 bits (:math:`n L_1` and
:math:`n L_2` exact for :math:`|n| < 2^{17}`)."""
_TO_STEPS = 64.0 / math.log(2.0)
_POWERS = np.array([math.ldexp(1.0, -i) for i in range(1023)])
r""":math:`2^{-i}`, :math:`0 \le i < 1023` (:func:`_exp_table`'s scaling, exact)."""
_EXPM1_TAIL = (1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5)
r""":math:`1/k!`, :math:`k = 6, \dots, 2`, after :math:`1/5040` (Horner's order)."""
_TABLE_LOW, _TABLE_HIGH = -700.0, 0.5
r""":func:`_exp_table`'s range: :math:`2^k` normal (:math:`k \ge -1010`), :math:`k \le 0`."""


@numba.njit(inline="always", error_model="numpy")
def _log_p_dd(x: float) -> tuple[float, float]:
    r""":math:`\log x` for :math:`x > 0` as ``hi + lo``, within about :math:`2^{-55}`
    (``_perplexity_dd.log_p_dd``: :math:`e \ln 2 + \log1p(m - 1)`), a probability's."""
    m, e = math.frexp(x)
    if m < _SQRT_HALF:
        m *= 2.0
        e -= 1
    k = float(e)
    return _two_sum(k * _LN2_HI, k * _LN2_LO + math.log1p(m - 1.0))


@numba.njit(inline="always", error_model="numpy")
def _log_dd(x: float) -> tuple[float, float]:
    r""":math:`\log x` for finite :math:`x > 0` as ``hi + lo`` (``_perplexity_dd.log_dd``:
    :math:`k \ln 2 + 2\operatorname{atanh} s`, :math:`s = (m - 1)/(m + 1)`, the
    quotient's remainder by one FMA)."""
    m, e = math.frexp(x)
    if m < _SQRT_HALF:
        m *= 2.0
        e -= 1
    k = float(e)
    f = m - 1.0
    g, g_lo = _two_sum(m, 1.0)
    s = f / g
    product = s * g
    s_lo = (((f - product) - _fma(s, g, -product)) - s * g_lo) / g
    s2 = s * s
    series = 0.0
    for coefficient in _SERIES:
        series = series * s2 + coefficient
    hi, lo = _two_sum(k * _LN2_HI, 2.0 * s)
    return _two_sum(hi, lo + (k * _LN2_LO + (2.0 * s_lo + 2.0 * s * (s2 * series))))


@numba.njit(error_model="numpy", cache=True)
def _exp_parts(hi: float, lo: float) -> tuple[float, float]:
    r""":math:`e^{hi + lo}` as ``e + e_lo`` (``_double_double.exp_parts``: the rounded
    ``exp`` and its residual by :func:`_log_dd`)."""
    e = math.exp(hi)
    if e > 0.0 and e < _INF:
        log_hi, log_lo = _log_dd(e)
        return e, e * (((hi - log_hi) - log_lo) + lo)
    return e, 0.0


@numba.njit(inline="always", error_model="numpy")
def _exp_table_parts(y: float) -> tuple[float, float, float]:
    r""":math:`e^y = 2^k (hi + lo)` for finite :math:`|y| < 2^{10}` as ``(hi, lo, k)``,
    ``hi + lo`` within about :math:`2^{-68}` of itself (Tang's table method, as
    ``_double_double.exp_dd`` but with the series in floats): :math:`y = n \ln 2/64 +
    t`, :math:`n = 64k + j`, :math:`0 \le j < 64`, :math:`t = t_{hi} + t_{lo}`
    (:math:`n L_1` exact, :math:`y - n L_1` exact by Sterbenz, the rest by TwoSum),
    :math:`|t| \le \ln 2/128 < 2^{-7.5}`; :math:`e^t - 1 = m + m_{lo}`, :math:`m` the
    float sum of :math:`t_{hi}` and :math:`t_{hi}^2 \sum_{i=2}^{7} t_{hi}^{i-2}/i!`
    (the series cut after :math:`t^7/7!`: :math:`t^8/8! < 2^{-75}`; its float rounding
    under :math:`2^{-68}`), :math:`m_{lo}` that sum's error (Fast2Sum) plus
    :math:`t_{lo}`; :math:`2^{j/64} e^t`: the product :math:`2^{j/64} m` exact by an FMA
    and added to the table's :math:`2^{j/64}` by Fast2Sum, the rest in the low part
    (``hi`` the rounded sum, ``lo`` within a few of its ulps: the weights' low parts
    summed in floats stay small). No ``exp``
    call and no logarithm (``_exp_parts``' residual took a division and an atanh
    series an entry: most of the kernel's time on logits)."""
    n = math.floor(y * _TO_STEPS + 0.5)
    k = math.floor(n * (1.0 / 64.0))
    j = int(n - 64.0 * k)
    t_hi, t_lo = _two_sum(y - n * _L1, -(n * _L2))
    t_lo = t_lo - n * _L3
    series = 1.0 / 5040.0
    for c in _EXPM1_TAIL:
        series = series * t_hi + c
    square = (t_hi * t_hi) * series
    m = t_hi + square  # e^t - 1 = m + m_lo (Fast2Sum: |t_hi| > |square|)
    m_lo = (square - (m - t_hi)) + t_lo
    step, step_lo = _STEPS_HI[j], _STEPS_LO[j]
    c = step * m
    c_err = _fma(step, m, -c)
    hi = step + c  # (Fast2Sum: |step| > |c|)
    lo = (c - (hi - step)) + (c_err + _fma(step, m_lo, step_lo * (1.0 + m)))
    return hi, lo, k


@numba.njit(inline="always", error_model="numpy")
def _exp_table(y: float) -> tuple[float, float]:
    r""":math:`e^y` for :math:`-700 \le y \le 1/2` as ``hi + lo`` (:func:`_exp_table_parts`
    scaled by :math:`2^k`, :math:`-1010 \le k \le 0`, from a table: exact)."""
    hi, lo, k = _exp_table_parts(y)
    scale = _POWERS[int(-k)]
    return hi * scale, lo * scale


@numba.njit(inline="always", error_model="numpy")
def _exp_of_entropy(h: float, h_lo: float) -> float:
    r""":math:`e^{h + h_{lo}}` rounded: for :math:`0 \le h \le 709` by
    :func:`_exp_table_parts` (:math:`2^k` by ``ldexp``: :math:`k \le 1023`), times
    :math:`1 + h_{lo}`; else :func:`_exp_parts` (``inf`` past the range, without a
    warning in a kernel)."""
    if h >= 0.0 and h <= 709.0:
        hi, lo, k = _exp_table_parts(h)
        return math.ldexp(hi + (lo + hi * h_lo), int(k))
    e_h, e_h_lo = _exp_parts(h, h_lo)
    return e_h if math.isinf(e_h) else e_h + e_h_lo


@numba.njit(inline="always", error_model="numpy")
def _exp_cut(hi: float, lo: float, cut: float) -> tuple[float, float]:
    r""":func:`_exp_table` above ``cut`` (:func:`_exp_parts` outside its range), the
    rounded ``exp`` alone below: with
    ``cut`` :math:`= -(\log n + 12)`, the terms below are under :math:`e^{-12}/n` each,
    and their ``exp``'s rounding (an ulp, :math:`2^{-52}` relative) adds at most
    :math:`n \cdot 2^{-52} e^{c}(|c| + 1) \le 2^{-62}` to :math:`H` (:math:`e^d |d|`
    falls below :math:`d = -1`; :math:`|c| + 1 \le 2^{5.1}` for :math:`n < 2^{31}`),
    where a row's mass sits on a few classes, as a language model's, most entries."""
    if hi < cut:
        return math.exp(hi), 0.0
    if hi <= _TABLE_HIGH and hi >= _TABLE_LOW:  # (e^lo = 1 + lo: |lo| <= 2^-48)
        e, e_lo = _exp_table(hi)
        return e, e_lo + e * lo
    return _exp_parts(hi, lo)


@numba.njit(inline="always", error_model="numpy")
def _dd_add(hi: float, lo: float, x: float, x_lo: float) -> tuple[float, float]:
    """``hi + lo`` plus ``x + x_lo``: the high parts by TwoSum, the rest in ``lo``."""
    s, e = _two_sum(hi, x)
    return s, lo + (e + x_lo)


@numba.njit(inline="always", error_model="numpy")
def _dd_mul(a: float, a_lo: float, b: float, b_lo: float) -> tuple[float, float]:
    """``(a + a_lo)(b + b_lo)`` as ``hi + lo`` (the product of the high parts by FMA)."""
    t = a * b
    return t, _fma(a, b, -t) + (a * b_lo + a_lo * b)


@numba.njit(inline="always", error_model="numpy")
def _row_top(a: Any, r: int, n: int) -> tuple[float, bool]:
    """Row ``r``'s largest entry (0 if none is finite) and whether an entry is NaN or
    ``+inf`` or none is above ``-inf`` (a logits row's validation fails)."""
    top = -_INF
    bad = False
    for i in range(n):
        v = a[r, i]
        if v > top:
            top = v
        bad = bad or v != v
    bad = bad or top == _INF or top == -_INF
    return (top if math.isfinite(top) else 0.0), bad


def _perplexity_rows(
    a: Any,
    b: Any,
    cross: bool,
    form_a: int,
    form_b: int,
    tol_a: float,
    tol_b: float,
    first: int,
    stop: int,
    out: Any,
) -> int:
    r"""``out[r]`` = the perplexity of row ``r`` of ``a`` (against ``b`` if ``cross``)
    for ``first <= r < stop``, the sides in the forms ``form_a``, ``form_b``
    (``_perplexity_dd.FORMS``), and the number of suspect rows: a side screened (its
    tolerance ``>= 0``) as ``_fused_kernels._suspect`` screens it: probabilities with
    an entry outside [0, 1] (or NaN) or a sum more than its tolerance from 1,
    log-probabilities whose exp-sum is that far from 1 or whose largest entry is above
    0, logits with NaN or ``+inf`` or every entry ``-inf``.

    One pass an entry (after one for a logits row's maximum :math:`m`): P's weights
    :math:`\omega_i` (:math:`p_i`, :math:`e^{\ell_i}`, or :math:`e^{z_i - m}` by
    :func:`_exp_cut`) and X's logarithms :math:`\lambda_i` (:func:`_log_dd`,
    :math:`\ell_i`, or :math:`d_i = z_i - m` by TwoSum), with
    :math:`A = \sum \omega_i \lambda_i`, :math:`W = \sum \omega_i` and a logits
    side's :math:`S = \sum e^{d_i}` in double-double (:math:`W` is :math:`S` itself for
    one side of logits: not summed twice); then :math:`H = -(A - W \log S_X) / S_P`
    (the terms of a side not in logits left out), as ``_perplexity_dd.dd_entropy`` forms
    it entry by entry, and :math:`e^H` by :func:`_exp_of_entropy`. A screened side of
    log-probabilities sums its weights' high parts for its exp-sum (each within an ulp
    of ``exp``'s)."""
    n = a.shape[1]
    form_x = form_b if cross else form_a
    cut = -(math.log(n) + 12.0)
    self_logits = not cross and form_a == 2
    suspects = 0
    for r in range(first, stop):
        a_hi = a_lo = w_hi = w_lo = 0.0  # A and W
        far = False
        s_a = s_a_lo = s_x = s_x_lo = 0.0  # the logits sides' S
        sum_a = sum_b = 0.0
        lo_a = lo_b = 0.0
        hi_a = hi_b = 1.0
        infinite = False
        top_a = top_x = 0.0
        screen_a, screen_b = tol_a >= 0.0, tol_b >= 0.0
        if form_a != 0:
            top_a, bad = _row_top(a, r, n)
            if screen_a and (bad or (form_a == 1 and top_a > 0.0)):
                suspects += 1
                screen_a = False  # (counted: not again below)
        if cross and form_b != 0:
            top_x, bad = _row_top(b, r, n)
            if screen_b and (bad or (form_b == 1 and top_x > 0.0)):
                suspects += 1
                screen_b = False
        elif not cross:
            top_x = top_a
        for i in range(n):
            p = a[r, i]
            x = b[r, i] if cross else p
            if screen_a and form_a == 0:  # a NaN makes the sum NaN
                sum_a += p
                lo_a, hi_a = min(lo_a, p), max(hi_a, p)
            # (a screened side of form 1: its exp-sum from its weights, below)
            if screen_b:
                if form_b == 0:
                    sum_b += x
                    lo_b, hi_b = min(lo_b, x), max(hi_b, x)
                elif form_b == 1:
                    sum_b += math.exp(x)
            # X's logarithm (up to log S_X for logits), and its S
            if form_x == 0:
                l_hi, l_lo = _log_p_dd(x) if x > 0.0 else (0.0, 0.0)
                absent = x == 0.0
            elif form_x == 1:
                l_hi, l_lo = x, 0.0
                absent = x == -_INF
            else:
                l_hi, l_lo = _two_sum(x, -top_x)
                absent = x == -_INF
                far = not (absent or math.isfinite(l_hi))  # (a spread past the range)
                if far:  # halved: the term doubled below (its weight e^d is 0)
                    l_hi, l_lo = _two_sum(0.5 * x, -0.5 * top_x)
                    e = e_lo = 0.0
                elif not absent:
                    e, e_lo = _exp_cut(l_hi, l_lo, cut)
                    s_x, s_x_lo = _dd_add(s_x, s_x_lo, e, e_lo)
                else:
                    l_hi = l_lo = 0.0
            if infinite or p == (0.0 if form_a == 0 else -_INF):
                if infinite and screen_a and form_a == 1:
                    sum_a += math.exp(p)
                continue
            # P's weight (up to 1 / S_P for logits)
            if form_a == 0:
                o_hi, o_lo = p, 0.0
            elif not cross and form_a == 2:
                o_hi, o_lo = (e, e_lo) if not absent else (0.0, 0.0)
            elif form_a == 1:
                o_hi, o_lo = _exp_cut(p, 0.0, cut)
                sum_a += o_hi  # (the screen's exp-sum: exp within an ulp)
            else:
                d, d_lo = _two_sum(p, -top_a)
                o_hi, o_lo = _exp_cut(d, d_lo, cut) if math.isfinite(d) else (0.0, 0.0)
                s_a, s_a_lo = _dd_add(s_a, s_a_lo, o_hi, o_lo)
            if absent:
                if cross or form_x == 0:
                    infinite = True
                continue
            t, t_lo = _dd_mul(o_hi, o_lo, l_hi, l_lo)
            if form_x == 2 and far:  # (exact: by 2)
                t, t_lo = 2.0 * t, 2.0 * t_lo
            if math.isinf(t):
                infinite = True
                continue
            a_hi, a_lo = _dd_add(a_hi, a_lo, t, t_lo)
            if not self_logits:  # (one side of logits: W is S, the same sums)
                w_hi, w_lo = _dd_add(w_hi, w_lo, o_hi, o_lo)
        # (a log-probabilities row's exp-sum, its lo and hi unchanged: 0 and 1)
        if (
            screen_a
            and form_a != 2
            and not (abs(sum_a - 1.0) <= tol_a and lo_a >= 0.0 and hi_a <= 1.0)
        ):
            suspects += 1
        if (
            screen_b
            and form_b != 2
            and not (abs(sum_b - 1.0) <= tol_b and lo_b >= 0.0 and hi_b <= 1.0)
        ):
            suspects += 1
        if infinite:
            out[r] = _INF
            continue
        if form_x == 2:  # A - W log S_X
            if not cross:
                s_a, s_a_lo = s_x, s_x_lo
            if self_logits:
                w_hi, w_lo = s_x, s_x_lo
            s_x, s_x_lo = _two_sum(s_x, s_x_lo)
            if s_x > 0.0:
                log_hi, log_lo = _log_dd(s_x)
                t, t_lo = _dd_mul(w_hi, w_lo, log_hi, log_lo + s_x_lo / s_x)
                a_hi, a_lo = _dd_add(a_hi, a_lo, -t, -t_lo)
        if form_a == 2:  # / S_P
            s_a, s_a_lo = _two_sum(s_a, s_a_lo)
            if s_a > 0.0:
                q = a_hi / s_a
                q_lo = ((a_hi - q * s_a) - _fma(q, s_a, -(q * s_a)) + a_lo - q * s_a_lo) / s_a
                a_hi, a_lo = q, q_lo
        h, h_lo = _two_sum(-a_hi, -a_lo)
        out[r] = _exp_of_entropy(h, h_lo)
    return suspects


_SIDE = types.Array(types.float64, 2, "A", readonly=True)

perplexity_rows = numba.njit(
    [
        types.int64(
            _SIDE,
            _SIDE,
            types.boolean,
            types.int64,
            types.int64,
            types.float64,
            types.float64,
            types.int64,
            types.int64,
            types.float64[::1],
        )
    ],
    error_model="numpy",
    nogil=True,
    cache=True,
)(_perplexity_rows)
"""The kernel, compiled for its one signature (any layout of float64 rows)."""
