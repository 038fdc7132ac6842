r"""Double-double arithmetic in any array namespace: the one home of its primitives.

A double-double is an unevaluated sum ``hi + lo`` of two floats, ``|lo|`` at most
half an ulp of ``hi`` where it is normalised: about 106 significant bits from float64
operations. Everything here is elementwise (or a reduction over the last axis), in the
array API standard's operations, with the namespace passed as a keyword (``xp``); the
arrays are float64 unless a docstring says otherwise. Used by the generic path's exact
measures (``info/_perplexity_dd``: the perplexity; ``info/_js_mixed``: JS and KL of
mixed forms; ``info/_kl_mixed``), by ``_numerics`` (which re-exports the error-free
transformations under their old private names for ``losses/`` and ``calibration/``).

The building blocks:

* error-free transformations: :func:`two_sum` (Knuth's TwoSum [2]_: ``s + e = a + b``
  exactly, no condition on the magnitudes, six operations), :func:`quick_two_sum`
  (Dekker's Fast2Sum [1]_: three operations for ``|a| >= |b|``), :func:`split`
  (Veltkamp's splitting) and :func:`two_product` (Dekker's TwoProduct [1]_, no FMA:
  the array standard has none);
* double-double arithmetic: :func:`dd_mul_add` (``a b + c``; the error bounds of such
  double-word operations are Joldes, Muller and Popescu's [3]_);
* logarithms and exponentials: :func:`log_p_dd` (:math:`2^{-55}` absolute: enough for
  a probability's logarithm, whose weights sum to 1), :func:`log_dd` (:math:`2^{-60}`:
  an atanh series), :func:`exp_parts` (the rounded ``exp`` and its residual from
  :func:`log_dd`: :math:`2^{-59}` relative), :func:`exp_rounded` (``exp`` of a pair,
  rounded once) and :func:`exp_pairs` (Tang's table method [5]_ in double-double, a
  table of 4096 and a series of six terms whose pieces above :math:`2^{-53}` are
  exact: :math:`2^{-102}` relative, and :math:`e^y - 1` near 0), with :func:`exp_dd`
  its ``(hi, lo)``: the one array double-double exponential (branch exphome1);
* exact sums by extraction (Rump, Ogita and Oishi [4]_): :func:`sum_dd` (one level,
  its power of two from each row's largest entry) and :func:`excess_of_pairs` (two
  levels at a fixed power of two, for rows of probabilities that sum to about 1).

The numbers are fixed by the tests of the measures built on them (mpmath oracles);
``benchmarks/check_dd_bits.py`` checks that a change here keeps their bits.

References
----------
.. [1] T. J. Dekker, "A floating-point technique for extending the available
   precision", Numer. Math. 18 (1971) 224-242, doi:10.1007/BF01397083.
.. [2] D. E. Knuth, The Art of Computer Programming, vol. 2, 3rd ed. (1998), sec. 4.2.2,
   Theorem B (TwoSum).
.. [3] M. Joldes, J.-M. Muller and V. Popescu, "Tight and rigorous error bounds for
   basic building blocks of double-word arithmetic", ACM Trans. Math. Softw. 44(2)
   (2017), doi:10.1145/3121432.
.. [4] S. M. Rump, T. Ogita and S. Oishi, "Accurate floating-point summation part I:
   faithful rounding", SIAM J. Sci. Comput. 31(1) (2008), doi:10.1137/050645671.
.. [5] P. T. P. Tang, "Table-driven implementation of the exponential function in
   IEEE floating-point arithmetic", ACM Trans. Math. Softw. 15(2) (1989) 144-157,
   doi:10.1145/63522.214389.
.. [6] T. Ogita, S. M. Rump and S. Oishi, "Accurate sum and dot product", SIAM J. Sci.
   Comput. 26(6) (2005) 1955-1988, doi:10.1137/030601818.
"""

from __future__ import annotations

import functools
import math
from decimal import Decimal, localcontext
from fractions import Fraction
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from ._xp import Array, device, is_jax_tracer, is_numpy, settled

__all__ = [
    "ATANH_SERIES",
    "LN2_HI",
    "LN2_LO",
    "Exp",
    "dd_mul_add",
    "excess_of_pairs",
    "excess_of_pairs32",
    "exp_constants",
    "exp_dd",
    "exp_pair32",
    "exp_pairs",
    "exp_parts",
    "exp_residual",
    "exp_rounded",
    "exp_table",
    "exp_triple32",
    "extract_levels32",
    "frexp",
    "held32",
    "level_words",
    "level_words32",
    "levels32",
    "log_dd",
    "log_p_dd",
    "power_of_two",
    "power_of_two32",
    "quick_two_sum",
    "rounded_sum",
    "split",
    "split32",
    "sum_dd",
    "two_product",
    "two_product32",
    "two_sum",
]

# --- error-free transformations ----------------------------------------------------

_SPLITTER = 2.0**27 + 1.0  # Veltkamp's constant for float64


def split(a: Array) -> tuple[Array, Array]:
    r"""Veltkamp's splitting ``a = hi + lo`` exactly, each of at most 26 bits (float64,
    :math:`|a| \le 2^{996}`): :math:`c = (2^{27} + 1) a`, :math:`hi = c - (c - a)`."""
    (c,) = settled(_SPLITTER * a)
    hi = c - (c - a)
    return hi, a - hi


def two_product(a: Array, b: Array) -> tuple[Array, Array]:
    r"""``(p, e)`` with ``p = fl(a b)`` and ``a b = p + e`` exactly (Dekker's
    TwoProduct [1]_, no FMA: products that do not underflow, :math:`|a|, |b| \le
    2^{996}`): :math:`e = ((a_h b_h - p) + a_h b_l + a_l b_h) + a_l b_l` of the
    halves of :func:`split`."""
    a, b = settled(a, b)
    (p,) = settled(a * b)
    a_hi, a_lo = split(a)
    b_hi, b_lo = split(b)
    return p, ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


def two_sum(a: Array, b: Array) -> tuple[Array, Array]:
    r"""``(s, e)`` with ``s = fl(a + b)`` and ``a + b = s + e`` exactly (Knuth's
    TwoSum [2]_, no condition on the magnitudes): :math:`b' = s - a`,
    :math:`a' = s - b'`, :math:`e = (a - a') + (b - b')`."""
    a, b = settled(a, b)
    s = a + b
    b_virtual = s - a
    a_virtual = s - b_virtual
    return s, (a - a_virtual) + (b - b_virtual)


def quick_two_sum(a: Array, b: Array) -> tuple[Array, Array]:
    r"""``(s, e)`` with ``s = fl(a + b)``, ``a + b = s + e`` exactly for
    :math:`|a| \ge |b|` (Dekker's Fast2Sum [1]_): :math:`e = b - (s - a)`."""
    a, b = settled(a, b)
    s = a + b
    return s, b - (s - a)


def dd_mul_add(
    a: tuple[Array, Array], b: tuple[Array, Array], c: tuple[Array, Array]
) -> tuple[Array, Array]:
    r"""``a b + c`` of double-doubles (``|c|`` the larger), as a normalised
    double-double: :math:`a_h b_h` by :func:`two_product` plus the cross terms
    :math:`a_h b_l + a_l b_h`, added to :math:`c_h` by :func:`two_sum`, the rest
    (and :math:`c_l`) in floats, then :func:`quick_two_sum` (the low parts' product
    :math:`a_l b_l` left out, under :math:`2^{-106}` of the product; [3]_ bounds
    such double-word operations)."""
    p, e = two_product(a[0], b[0])
    e = e + (a[0] * b[1] + a[1] * b[0])
    s, f = two_sum(c[0], p)
    return quick_two_sum(s, f + e + c[1])


# --- logarithms ----------------------------------------------------------------------

LN2_HI = math.ldexp(math.floor(math.ldexp(math.log(2.0), 42)), -42)
r""":math:`\ln 2` to 42 significant bits: :math:`e \cdot` ``LN2_HI`` is exact for every
exponent :math:`|e| \le 1075` of a float64."""

LN2_LO = float(
    Fraction("0.693147180559945309417232121458176568075500134360255254120680009") - Fraction(LN2_HI)
)
r""":math:`\ln 2 -` :data:`LN2_HI`, rounded."""

_SQRT_HALF = math.sqrt(0.5)

ATANH_SERIES = tuple(1.0 / k for k in range(3, 25, 2))
r"""The coefficients :math:`1/3, 1/5, \ldots, 1/23` of :math:`\operatorname{atanh}(s)/s - 1
= s^2/3 + s^4/5 + \cdots` (:func:`log_dd`: :math:`|s| \le 0.1716`, the first term left
out, :math:`2 s^{25}/25`, under :math:`2^{-66}`)."""


def power_of_two(k: Any, *, xp: ModuleType) -> Any:
    r""":math:`2^k` for whole float ``k`` in :math:`[-1074, 1023]`, exactly (``ldexp``;
    without it ``2.0 ** k``, exact in NumPy's ``pow``, which array-api-strict runs)."""
    if hasattr(xp, "ldexp"):
        return xp.ldexp(xp.ones_like(k), xp.astype(k, xp.int32))
    return 2.0**k


def frexp(x: Any, *, xp: ModuleType) -> tuple[Any, Any]:
    r"""``(m, k)`` with :math:`x = m 2^k`, :math:`m \in [1/2, 1)` and ``k`` a whole
    float, for finite :math:`x > 0` (subnormal ones too). Without ``frexp``: ``k`` from
    :math:`\lfloor\log_2 x\rfloor + 1`, one step off at most, set right by one test each
    way; :math:`x / 2^{k-1}` is exact (a power of two, the quotient normal), and so is
    its half."""
    if hasattr(xp, "frexp"):
        m, e = xp.frexp(x)
        return m, xp.astype(e, x.dtype)
    k = xp.floor(xp.log2(x)) + 1.0
    m = (x / 2.0 ** (k - 1.0)) * 0.5
    up = m >= 1.0
    m, k = xp.where(up, 0.5 * m, m), xp.where(up, k + 1.0, k)
    down = m < 0.5
    return xp.where(down, 2.0 * m, m), xp.where(down, k - 1.0, k)


def log_p_dd(x: Any, *, xp: ModuleType) -> tuple[Any, Any]:
    r""":math:`\log x` for finite :math:`x > 0` as ``hi + lo`` within about
    :math:`2^{-55}` absolute: :math:`\log x = k \ln 2 + \operatorname{log1p}(m - 1)`
    with :math:`x = m 2^k`, :math:`m \in [\sqrt{1/2}, \sqrt 2)` (:func:`frexp`):
    :math:`m - 1` is exact (Sterbenz), :math:`k \ln 2_{hi}` is exact (:data:`LN2_HI`
    has 42 significant bits), and the rounding left is that of ``log1p`` of
    :math:`|{\log m}| \le 0.347`, against :math:`2^{-50}` of a rounded :math:`\log x`
    near :math:`-10`. For a probability side's logarithms, whose weights sum to 1: the
    error of an entropy stays about :math:`2^{-55}`."""
    m, e = frexp(x, xp=xp)
    low = m < _SQRT_HALF
    m = xp.where(low, 2.0 * m, m)
    k = e - xp.astype(low, x.dtype)
    return two_sum(k * LN2_HI, k * LN2_LO + xp.log1p(m - 1.0))


def log_dd(x: Any, *, xp: ModuleType) -> tuple[Any, Any]:
    r""":math:`\log x` for finite :math:`x > 0` as ``hi + lo``, within about
    :math:`2^{-60}` absolute: :math:`x = m 2^k`, :math:`m \in [\sqrt{1/2}, \sqrt 2)`,
    :math:`\log x = k \ln 2 + 2\operatorname{atanh} s`, :math:`s = (m - 1)/(m + 1)`:
    :math:`m - 1` exact, :math:`s` as ``s + s_lo`` (its quotient's remainder by
    :func:`two_product`), :math:`2s` exact, :math:`k \ln 2_{hi}` exact, and the series'
    tail :math:`2s(s^2/3 + s^4/5 + \cdots)` (:data:`ATANH_SERIES`, at most 0.0035)
    rounded within a few of its ulps. (:func:`log_p_dd`, :math:`2^{-55}` off, is enough
    for a probability's logarithm, but not for :func:`exp_parts`' residual, where the
    error is relative.)"""
    m, k = frexp(x, xp=xp)
    low = m < _SQRT_HALF
    m = xp.where(low, 2.0 * m, m)
    k = k - xp.astype(low, x.dtype)
    f = m - 1.0  # exact (Sterbenz)
    g, g_lo = two_sum(m, xp.ones_like(m))
    s = f / g
    product, product_lo = two_product(s, g)
    s_lo = (((f - product) - product_lo) - s * g_lo) / g
    s2 = s * s
    series = xp.zeros_like(s)
    for coefficient in reversed(ATANH_SERIES):
        series = series * s2 + coefficient
    hi, lo = two_sum(k * LN2_HI, 2.0 * s)
    return two_sum(hi, lo + (k * LN2_LO + (2.0 * s_lo + 2.0 * s * (s2 * series))))


# --- exponentials --------------------------------------------------------------------


def exp_residual(x: Any, e: Any, *, xp: ModuleType) -> Any:
    r""":math:`r` with :math:`e^{x} = e\,(1 + r)` to :math:`O(r^2)`, for :math:`e` the
    rounded ``exp(x)`` (finite, above 0; 0 elsewhere): :math:`x - \log e` by
    :func:`log_dd` (:math:`x - hi` exact: Sterbenz)."""
    fine = xp.isfinite(e) & (e > 0.0)
    log_hi, log_lo = log_dd(xp.where(fine, e, 1.0), xp=xp)
    return xp.where(fine, (xp.where(fine, x, 0.0) - log_hi) - log_lo, 0.0)


def exp_parts(hi: Any, lo: Any, *, xp: ModuleType) -> tuple[Any, Any]:
    r""":math:`e^{hi + lo}` as ``e + e_lo``: :math:`e` the rounded ``exp(hi)``,
    :math:`e_{lo} = e\,(r + lo)` (:func:`exp_residual`), within about :math:`2^{-59}`
    relative where :math:`e` is normal (0 and ``inf`` with ``e_lo`` 0)."""
    e = xp.exp(hi)
    return e, xp.where(xp.isfinite(e), e * (exp_residual(hi, e, xp=xp) + lo), 0.0)


def exp_rounded(hi: Any, lo: Any, *, xp: ModuleType) -> Any:
    r""":math:`e^{hi + lo}` rounded (:func:`exp_parts`; ``+inf`` past the range, without
    a NaN from ``inf * 0``)."""
    e, e_lo = exp_parts(hi, lo, xp=xp)
    return xp.where(xp.isinf(e), e, e + e_lo)


_U64 = 2.0**-53

_STEPS = 64
"""Table entries of :func:`exp_constants` (the perplexity kernel's scalar ``exp``):
:math:`2^{j/64}`, :math:`0 \\le j < 64`."""


def _dd_of(value: Fraction | Decimal) -> tuple[float, float]:
    """A high-precision constant as a float64 pair ``hi + lo``."""
    hi = float(value)
    if isinstance(value, Decimal):
        return hi, float(value - Decimal(hi))
    return hi, float(value - Fraction(hi))


@functools.cache
def exp_constants() -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, float, float]]:
    r""":math:`2^{j/64}` as pairs (``hi``, ``lo`` tuples) and :math:`\ln 2/64` in three
    parts, the first two of 36 bits (so that :math:`n L_1`, :math:`n L_2` are exact
    for :math:`|n| < 2^{17}`), from :mod:`decimal` at 60 digits (once): the tables of
    the Numba perplexity kernel's scalar ``exp`` (``info/_perplexity_kernels``; the
    arrays' double-double exponential is :func:`exp_pairs`, of a table of 4096)."""
    with localcontext() as context:
        context.prec = 60
        steps = [_dd_of(Decimal(2) ** (Decimal(j) / _STEPS)) for j in range(_STEPS)]
    return (
        tuple(h for h, _ in steps),
        tuple(lo for _, lo in steps),
        _ln2_parts(_STEPS, bits=36),
    )


def _ln2_parts(steps: int, *, bits: int) -> tuple[float, float, float]:
    r""":math:`\ln 2/\text{steps}` as :math:`L_1 + L_2 + L_3` (:mod:`decimal` at 60
    digits), :math:`L_1` and :math:`L_2` rounded to ``bits`` significant bits (so that
    :math:`n L_1` and :math:`n L_2` are exact for :math:`|n| < 2^{53 - \text{bits}}`),
    :math:`L_3` the rest rounded to a float (Cody and Waite's reduction)."""
    with localcontext() as context:
        context.prec = 60
        step = Decimal(2).ln() / steps
        parts = []
        for _ in range(2):
            exponent = math.frexp(float(step))[1]
            part = math.ldexp(round(math.ldexp(float(step), bits - exponent)), exponent - bits)
            parts.append(part)
            step -= Decimal(part)
        return parts[0], parts[1], float(step)


_EXP_STEPS = 4096
r"""Table entries of :func:`exp_pairs`: :math:`2^{j/4096}`, :math:`0 \le j < 4096`."""

_HALF_STEP = math.log(2.0) / (2 * _EXP_STEPS)
r""":math:`\ln 2/8192`: the reduced argument's bound, :math:`|t| \le 8.5\cdot 10^{-5}
< 2^{-13.5}`."""

_GRID = 1.5 * 2.0**26
r"""Adding and subtracting it rounds :math:`|t| < 2^{25}` to a multiple of :math:`2^{-26}`
(:func:`exp_pairs`' head :math:`h`: at most 13 bits where :math:`|t| \le 2^{-13.5}`)."""

_C6_HI = 10923 / 65536
r""":math:`1/6` to 14 bits: :math:`h^3` (39 bits) times it is exact."""
_C6_LO = float(Fraction(1, 6) - Fraction(_C6_HI))
_C4, _C5, _C6 = 1 / 24, 1 / 120, 1 / 720


@functools.cache
def exp_table() -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    r""":math:`2^{j/4096}` as float64 pairs (``hi``, ``lo``: each rounded to nearest,
    ``hi + lo`` within :math:`2^{-106}` of it) and :math:`\ln 2/4096` in three parts, the
    first two of 30 bits (:math:`n L_1`, :math:`n L_2` exact for :math:`|n| < 2^{23}`),
    from :mod:`decimal` at 60 digits (once, about 20 ms)."""
    with localcontext() as context:
        context.prec = 60
        base = Decimal(2) ** (Decimal(1) / _EXP_STEPS)
        value, pairs = Decimal(1), []
        for _ in range(_EXP_STEPS):
            pairs.append(_dd_of(value))
            value *= base
    highs, lows = (np.array(column) for column in zip(*pairs, strict=True))
    return highs, lows, _ln2_parts(_EXP_STEPS, bits=30)


class Exp(NamedTuple):
    """:func:`exp_pairs`' result: :math:`e^y` as ``hi + lo``; where ``near``,
    :math:`e^y - 1` as ``m_hi + m_lo`` (elsewhere not that)."""

    hi: Array
    lo: Array
    m_hi: Array
    m_lo: Array
    near: Array


def exp_pairs(y: Array, y_lo: Array | None, *, xp: ModuleType) -> Exp:
    r""":math:`e^{y + y_\ell}` of float64 :math:`y` (:math:`y_\ell` at most an ulp of it,
    finite, or None for 0) as a double-double, within about :math:`2^{-102}` of itself where it is
    normal (:math:`2^{-105}` for :math:`y_\ell = 0`, :math:`|y| \le 20`), and where
    :math:`|y| \le \ln 2/8192` also :math:`e^{y + y_\ell} - 1` as a double-double to
    about :math:`2^{-105}` absolute. ``-inf`` and :math:`y \le -800` give 0, NaN NaN.

    :math:`y = n\ln 2/4096 + t`, :math:`n = 4096k + j`, :math:`e^y = 2^k\,T_j\,(1 +
    w)`, :math:`T_j = 2^{j/4096}` a pair from a table (:func:`exp_table`), :math:`w =
    e^t - 1`; :math:`t = t_{hi} + \tau` with :math:`y - nL_1` and :math:`nL_2` exact
    (30-bit parts of :math:`\ln 2/4096`), their TwoSum, and :math:`\tau` its error plus
    :math:`y_\ell - nL_3`; :math:`|t| \le 2^{-13.5}`. The series :math:`w = \sum_{i=1}^6
    t^i/i!` (the rest :math:`< 2^{-106.8}`) is formed from the head :math:`h` of
    :math:`t_{hi}` (a multiple of :math:`2^{-26}`: 13 bits), :math:`l = t_{hi} - h` (exact,
    :math:`|l| \le 2^{-27}`) and :math:`u = l + \tau`: the pieces above :math:`2^{-53}`,
    :math:`t_{hi}`, :math:`h^2/2`, :math:`hl` (at most 52 bits) and :math:`h^3 c_{hi}`
    (:math:`c_{hi}` = :data:`_C6_HI`), are exact and gathered by TwoSums; the rest,
    :math:`\tau(1 + h) + (h^2/2)u + u^2(1/2 + h/2 + u/6) + h^3(1/6 - c_{hi}) +
    t^4(1/24 + t/120 + t^2/720)`, each below :math:`2^{-52}`, in floats (rounding
    errors about :math:`2^{-106}`, :math:`2^{-102}` where :math:`\tau` is
    :math:`2^{-49}`). Then :math:`T_j(1 + w)` by TwoProduct and :math:`2^k` exactly
    (``ldexp``; else two powers of 2, each normal). About 100 elementwise operations
    (branch klexact3), against about 260 of the table of 64 that :func:`exp_dd` was
    until branch exphome1 (:math:`|t| \le 2^{-7.5}`, eleven terms, six of them in
    double-double, :math:`2^{-96.4}` relative where :math:`y` has a low part)."""
    table_hi, table_lo, (l1, l2, l3) = exp_table()
    finite = y > -800.0  # (below: e^y is 0; NaN stays, by the product with y)
    # (concrete arrays with every entry in range: no selection at all; a JAX tracer's
    # values are not known, and it takes the selections)
    every = not is_jax_tracer(y) and bool(xp.all(finite))
    zero = xp.zeros_like(y)
    y0 = y if every else xp.where(finite, y, zero)
    n = xp.round(y0 * (_EXP_STEPS / math.log(2.0)))
    t_hi, tau = two_sum(y0 - n * l1, -(n * l2))
    tau = tau - n * l3
    if y_lo is not None:
        t_hi, error = two_sum(t_hi, y_lo if every else xp.where(finite, y_lo, zero))
        tau = error + tau
    (raised,) = settled(t_hi + _GRID)
    h = raised - _GRID
    l = t_hi - h  # noqa: E741 (the notation)
    u = l + tau
    h2 = h * h
    a = 0.5 * h2
    h3 = h2 * h
    t = t_hi + tau
    t2 = t * t
    small = (
        (tau + h * tau)
        + a * u
        + (u * u) * (0.5 + 0.5 * h + u * (1.0 / 6.0))
        + h3 * _C6_LO
        + (t2 * t2) * (_C4 + t * (_C5 + t * _C6))
    )
    q, e1 = quick_two_sum(a, h3 * _C6_HI)  # |h^2/2| >= |h^3/6|
    q, e2 = two_sum(q, h * l)
    m_hi, m_lo = quick_two_sum(t_hi, q)  # |t| >= |t^2|
    m_lo = m_lo + ((e1 + e2) + small)
    k = xp.floor(n / _EXP_STEPS)
    index = xp.reshape(xp.astype(n - _EXP_STEPS * k, xp.int64), (-1,))
    if is_numpy(xp):
        s_hi, s_lo = (xp.reshape(x[index], y.shape) for x in (table_hi, table_lo))
    else:
        where = device(y)
        s_hi, s_lo = (
            xp.reshape(xp.take(xp.asarray(x, dtype=y.dtype, device=where), index), y.shape)
            for x in (table_hi, table_lo)
        )
    product, product_lo = two_product(s_hi, m_hi)
    rest = product_lo + (s_hi * m_lo + s_lo * (1.0 + m_hi))
    hi, lo = quick_two_sum(s_hi, product)
    hi, lo = quick_two_sum(hi, lo + rest)
    if is_numpy(xp):
        power = xp.astype(k, xp.int32)
        hi, lo = np.ldexp(hi, power), np.ldexp(lo, power)
    else:
        two = xp.asarray(2.0, dtype=y.dtype, device=device(y))
        half = xp.floor(k / 2)
        first, second = xp.pow(two, half), xp.pow(two, k - half)
        hi, lo = hi * first * second, lo * first * second
    near = n == 0.0
    if every:
        return Exp(hi, lo, m_hi, m_lo, near)
    outside = xp.where(xp.isnan(y), y, zero)
    near = finite & near
    return Exp(xp.where(finite, hi, outside), xp.where(finite, lo, outside), m_hi, m_lo, near)


def exp_dd(y: Array, *, xp: ModuleType) -> tuple[Array, Array]:
    r""":math:`e^y` of float64 :math:`y` as a double-double ``(hi, lo)``: the first two
    fields of :func:`exp_pairs` (``y_lo`` None), within about :math:`2^{-105}` of itself
    where it is normal. ``-inf`` and :math:`y \le -800` give 0; a NaN, NaN."""
    e = exp_pairs(y, None, xp=xp)
    return e.hi, e.lo


# --- exact sums by extraction ----------------------------------------------------------


def sum_dd(hi: Any, lo: Any, *, xp: ModuleType) -> tuple[Any, Any]:
    r""":math:`\sum_i (hi_i + lo_i)` over the last axis as ``s + s_lo`` (kept): the high
    parts split at a power of two :math:`\sigma \ge 2^{\lceil\log_2(n + 2)\rceil}
    \max_i |hi_i|`, their high halves summed exactly in any order [4]_, the rest in
    plain float64 (its error of order :math:`n u^2 \sigma`)."""
    n = hi.shape[-1]
    biggest = xp.max(xp.abs(hi), axis=-1, keepdims=True)
    e = frexp(xp.where(biggest > 0.0, biggest, 1.0), xp=xp)[1]
    sigma = power_of_two(e + float(max(1, math.ceil(math.log2(n + 2)))), xp=xp)
    high = (sigma + hi) - sigma  # exact parts, their sum exact in any order
    top = xp.sum(high, axis=-1, keepdims=True)
    rest = xp.sum(hi - high, axis=-1, keepdims=True) + xp.sum(lo, axis=-1, keepdims=True)
    s = top + rest
    return s, rest - (s - top)


def excess_of_pairs(hi: Array, lo: Array, *, xp: ModuleType) -> Array:
    r""":math:`\sum_i (h_i + l_i) - 1` of rows of float64 pairs with
    :math:`0 \le h_i \le 2`, to about :math:`2^{-100}`: two levels of exact extraction
    ([4]_, as ``info/_measures._MassExtraction``): with :math:`2^M \ge n + 2` and
    :math:`\sigma = 2^{M + 1}`, :math:`t_i = (\sigma + h_i) - \sigma` is exact and so
    is :math:`\tau = \sum_i t_i` (a multiple of :math:`u\sigma` below :math:`\sigma`);
    the remainders (at most :math:`u\sigma`) again at :math:`\sigma' = 2^M u \sigma`;
    what is left (at most :math:`2^{2M + 1} u^2`, and the :math:`l_i`) summed in
    floats. :math:`\tau - 1` is exact (Sterbenz) where the row sums to about 1."""
    taus, rest = _extracted_levels(hi, 2, _U64, xp=xp)
    tail = xp.sum(rest, axis=-1) + xp.sum(lo, axis=-1)
    return ((taus[0] - 1.0) + taus[1]) + tail


def _extracted_levels(
    values: Array,
    levels: int,
    unit: float,
    *,
    xp: ModuleType,
    start: tuple[Any, int] | None = None,
) -> tuple[list[Array], Array]:
    r"""``levels`` levels of exact extraction of rows of ``values`` (each at most 2 in
    magnitude) in the precision of unit roundoff ``unit``: with :math:`2^M \ge n + 2`,
    :math:`\sigma_0 = 2^{M + 1}` and :math:`\sigma_{k+1} = 2^M u \sigma_k`, level
    :math:`k` takes :math:`t_i = (\sigma_k + x_i) - \sigma_k` (exact) and its row sum
    :math:`\tau_k` (exact in any order), leaving :math:`x_i - t_i`. ``start``, where
    given, is :math:`(\sigma_0, M)` instead (:func:`extract_levels32`: a row's own
    :math:`\sigma_0`). Returns the :math:`\tau_k` and what is left
    (:func:`excess_of_pairs`, :func:`excess_of_pairs32`, :func:`extract_levels32`)."""
    if start is None:
        shift = max(2, math.ceil(math.log2(int(values.shape[-1]) + 2)))
        sigma: Any = 2.0 ** (shift + 1)
    else:
        sigma, shift = start
    taus = []
    rest = values
    for _ in range(levels):
        (raised,) = settled(sigma + rest)  # (XLA would fold (s + x) - s to x)
        top = raised - sigma
        taus.append(xp.sum(top, axis=-1))
        rest = rest - top
        sigma = sigma * (2.0**shift * unit)
    return taus, rest


# --- float32 double-words (branch jaxf32) ---------------------------------------------
# Float32 arrays where the device has no float64 (JAX without x64, Apple's MPS): the
# same error-free transformations at float32's precision (24 bits), an exponential as a
# pair, and the excess of rows of pairs over 1. Nothing above calls these.

_SPLITTER32 = 2.0**12 + 1.0  # Veltkamp's constant for float32
_U32 = 2.0**-24


def split32(a: Array) -> tuple[Array, Array]:
    r""":func:`split` of float32 ``a``: ``a = hi + lo`` exactly, each of at most 12 bits
    (:math:`c = (2^{12} + 1) a`, :math:`hi = c - (c - a)`; :math:`|a| \le 2^{114}`)."""
    (c,) = settled(_SPLITTER32 * a)
    hi = c - (c - a)
    return hi, a - hi


def two_product32(a: Array, b: Array) -> tuple[Array, Array]:
    r""":func:`two_product` of float32 ``a, b``: ``(p, e)``, :math:`ab = p + e` exactly
    (Dekker, no FMA; products that do not underflow)."""
    a, b = settled(a, b)
    (p,) = settled(a * b)
    a_hi, a_lo = split32(a)
    b_hi, b_lo = split32(b)
    return p, ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


@functools.cache
def _exp32_constants() -> tuple[tuple[float, float, float], np.ndarray, np.ndarray]:
    r""":math:`\ln 2/64` as three float32 parts (the first two of 11 bits, so that
    :math:`N` times them is exact for :math:`|N| < 2^{13}`) and the table
    :math:`2^{j/64}`, :math:`0 \le j < 64`, as float32 pairs (from 60 digits)."""
    first, second, rest = _ln2_parts(64, bits=11)
    with localcontext() as ctx:
        ctx.prec = 60
        table = [Decimal(2) ** (Decimal(j) / 64) for j in range(64)]
    hi = np.array([np.float32(float(t)) for t in table], dtype=np.float32)
    lo = np.array(
        [np.float32(float(t - Decimal(float(h)))) for t, h in zip(table, hi, strict=True)],
        dtype=np.float32,
    )
    return (first, second, float(np.float32(rest))), hi, lo


def power_of_two32(k: Array, *, xp: ModuleType) -> Array:
    r""":math:`2^k` of float32 whole ``k`` in :math:`[-126, 127]` (normal float32
    powers), exactly: for JAX the bits :math:`(k + 127) \cdot 2^{23}` read as a float32
    (branch jaxkl2: ``jnp.ldexp``, which handles subnormals and infinities op by op,
    was 1.35 ms of CPU on 200 x 1000 entries, two thirds of :func:`exp_pair32`'s time,
    against 0.1), elsewhere :func:`power_of_two` (the same values)."""
    if "jax" not in getattr(xp, "__name__", ""):
        return power_of_two(k, xp=xp)
    import jax  # (loaded: JAX arrays)

    bits = (xp.astype(k, xp.int32) + 127) * (2**23)
    return jax.lax.bitcast_convert_type(bits, xp.float32)


def held32(*arrays: Array, xp: ModuleType) -> tuple[Array, ...]:
    r"""Finite float32 ``arrays`` (one shape) as they are, bit for bit, but under JAX
    computed once each and stored (branch jaxkl2): XLA's CPU fuses a chain of
    elementwise operations into each consumer, so that the outputs of one chain
    (:func:`exp_pair32`'s two words, :func:`exp_triple32`'s three) were each computed
    from the chain's start, twice or three times its work (its ``optimization_barrier``
    is gone before fusion). Two at a time they are the parts of a ``complex64``
    divided by a traced :math:`1 + 0i` (a division is not duplicated into consumers;
    by :math:`1 + 0i` it is exact for finite parts, an infinite part would spoil the
    other), then read back (``real``, ``imag``). Elsewhere the arrays themselves."""
    if "jax" not in getattr(xp, "__name__", "") or not arrays:
        return arrays
    import jax  # (loaded: JAX arrays)

    first = arrays[0]
    zero = first * 0.0  # (traced: no constant to fold)
    one = jax.lax.complex(zero + 1.0, zero)
    out: list[Array] = []
    for i in range(0, len(arrays), 2):
        pair = arrays[i : i + 2]
        packed = jax.lax.complex(pair[0], pair[1] if len(pair) == 2 else zero) / one
        out.extend([xp.real(packed), xp.imag(packed)][: len(pair)])
    return tuple(out)


def exp_pair32(y: Array, *, xp: ModuleType) -> tuple[Array, Array]:
    r""":math:`e^y` of float32 :math:`y` as a float32 pair ``(hi, lo)`` within about
    :math:`2^{-44}` of itself (Tang's table method [5]_ in double-float): :math:`y = N
    \ln 2/64 + r`, :math:`N = 64k + j`, :math:`r = r_h + r_l` exact to
    :math:`2^{-50}` (:math:`N\,c_1` and :math:`N\,c_2` exact, :math:`y - N c_1` exact
    by Sterbenz), :math:`e^y = 2^k\,2^{j/64}(1 + \operatorname{expm1} r)` with
    :math:`\operatorname{expm1} r = r + r^2/2 + r^3/6 + r^4/24 + r^5/120`
    (:math:`|r| \le 2^{-7}`: the next term is under :math:`2^{-52}`), :math:`r_h^2`
    and :math:`2^{j/64}` times the series' head exact products
    (:func:`two_product32`). :math:`y < -87` (results near float32's subnormals)
    give the rounded ``exp`` and a zero low part; ``-inf`` 0; NaN NaN; :math:`y > 88`
    ``inf``."""
    (c1, c2, c3), table_hi, table_lo = _exp32_constants()
    zero = xp.zeros_like(y)
    plain = xp.exp(y)
    inside = (y >= -87.0) & (y <= 88.0)
    ys = xp.where(inside, y, zero)
    n = xp.round(ys * float(64.0 / math.log(2.0)))
    r1 = ys - n * c1  # (exact: n c1 has at most 24 bits, Sterbenz)
    r_hi, r_lo = two_sum(r1, -(n * c2))
    r_lo = r_lo - n * c3
    r_hi, r_lo = quick_two_sum(r_hi, r_lo)
    sq, sq_lo = two_product32(r_hi, r_hi)
    tail = r_hi * sq * (1.0 / 6.0 + r_hi * (1.0 / 24.0 + r_hi * (1.0 / 120.0)))
    e_hi, e_lo = two_sum(r_hi, 0.5 * sq)
    e_lo = e_lo + (r_lo + (0.5 * sq_lo + (r_hi * r_lo + tail)))
    e_hi, e_lo = quick_two_sum(e_hi, e_lo)
    whole = xp.astype(n, xp.int32)
    j = whole - 64 * (whole // 64)
    k = xp.astype((whole - j) // 64, y.dtype)
    shape = tuple(y.shape)
    index = xp.reshape(j, (-1,))
    t_hi = xp.reshape(xp.take(xp.asarray(table_hi, device=device(y)), index, axis=0), shape)
    t_lo = xp.reshape(xp.take(xp.asarray(table_lo, device=device(y)), index, axis=0), shape)
    p, p_lo = two_product32(t_hi, e_hi)
    hi, lo = two_sum(t_hi, p)
    lo = lo + (p_lo + (t_lo + (t_hi * e_lo + t_lo * e_hi)))
    hi, lo = quick_two_sum(hi, lo)
    scale = power_of_two32(k, xp=xp)  # (k in [-126, 127]: y in [-87, 88])
    hi, lo = held32(hi * scale, lo * scale, xp=xp)  # (finite: y taken as 0 where not inside)
    return xp.where(inside, hi, plain), xp.where(inside, lo, zero)


def excess_of_pairs32(hi: Array, lo: Array, *, xp: ModuleType) -> Array:
    r""":func:`excess_of_pairs` of rows of float32 pairs (:math:`0 \le h_i \le 2`,
    :math:`|l_i| \le u h_i`): :math:`\sum_i (h_i + l_i) - 1` to about :math:`2^{-48}`.
    The low parts join the high ones (:math:`2n` entries); three levels of exact
    extraction at :math:`\sigma = 2^{M + 1}`, :math:`2^{M} u \sigma`, ...
    (:math:`2^M \ge 2n + 2`), each level's sum exact; what is left (at most
    :math:`2^{3M + 1} u^3` an entry) summed in floats."""
    taus, rest = _extracted_levels(xp.concat([hi, lo], axis=-1), 3, _U32, xp=xp)
    return (((taus[0] - 1.0) + taus[1]) + taus[2]) + xp.sum(rest, axis=-1)


# --- float32 KL of nearly equal rows (branch jaxkl1) ------------------------------------


def extract_levels32(x: Array, bits: int, *, xp: ModuleType) -> tuple[list[Array], Array]:
    r"""Rows of float32 ``x`` (classes last) as exact level sums ``taus`` and a float
    ``rest``: :math:`\sum_i x_i = \sum_k \tau_k + \mathrm{rest}` with ``rest`` (the
    float sum of what the levels leave, each at most :math:`2^{-\text{bits}}` of the
    row's largest :math:`|x_i|`) its only rounding. Extraction (Rump, Ogita and Oishi
    [4]_) from the row's own largest entry: :math:`\sigma_0 = 2^{e + M}` for
    :math:`2^{e - 1} \le \max_i|x_i| < 2^{e}` and :math:`2^M \ge n + 2`,
    :math:`t_i = (\sigma_k + x_i) - \sigma_k` (exact) and :math:`\tau_k = \sum_i t_i`
    (exact in any order), the remainders (at most :math:`u\sigma_k`, :math:`u =
    2^{-24}`) again at :math:`\sigma_{k+1} = 2^M u\sigma_k`: :math:`24 - M` bits a
    level, :math:`\lceil(\text{bits} + M)/(24 - M)\rceil` levels. Each level is exact
    for any row; only near float32's underflow (:math:`\sigma_k` below
    :math:`2^{-126}`, flushed on XLA's CPU) does a level sum round, at that scale.
    Rows of more than :math:`2^{20}` classes are not taken (``ValueError``)."""
    taus, rest = level_words32(x, levels32(x, bits), xp=xp)
    return taus, xp.sum(rest, axis=-1)


def levels32(x: Array, bits: int) -> int:
    r"""The number of levels, :math:`\lceil(\text{bits} + M)/(24 - M)\rceil`, that
    :func:`extract_levels32` takes for rows like ``x`` (its last axis)."""
    shift = _shift32(x)
    return math.ceil((bits + shift) / (24 - shift))


def level_words32(x: Array, levels: int, *, xp: ModuleType) -> tuple[list[Array], Array]:
    r""":func:`extract_levels32`'s extraction by its number of ``levels`` (each
    :math:`24 - M` bits): the level sums and what the levels leave, entry by entry, not
    summed (branch jaxkl2: ``_kl_mixed._level_sums32`` bounds that sum's rounding).
    :func:`level_words` at float32's :math:`u`, rows whose largest entry is not below
    :math:`2^{100}` started as if it were 1 (:math:`\sigma_0` would overflow)."""
    return level_words(x, levels, unit=_U32, shift=_shift32(x), limit=2.0**100, xp=xp)


def level_words(
    x: Array, levels: int, *, unit: float, shift: int, limit: float | None = None, xp: ModuleType
) -> tuple[list[Array], Array]:
    r"""``levels`` levels of exact extraction of rows of ``x`` (classes last) in the
    precision of unit roundoff ``unit``, started at the row's own largest entry:
    :math:`\sigma_0 = 2^{e + M}` for :math:`2^{e - 1} \le \max_i|x_i| < 2^{e}` and
    ``shift`` :math:`M` (:math:`2^M \ge n + 2`), then :math:`\sigma_{k+1} = 2^M u
    \sigma_k` (:func:`_extracted_levels`). Returns the level sums and what the levels
    leave, entry by entry. Rows whose largest entry is 0, not a number, or not below
    ``limit`` (where given) start as if it were 1. :func:`level_words32` (float32) and
    ``_kl_mixed._compact_sum`` (float64: two levels, issue 13, branch jaxkl3) share
    this start."""
    biggest = xp.max(xp.abs(x), axis=-1, keepdims=True)
    fine = biggest > 0.0
    if limit is not None:
        fine = fine & (biggest < limit)
    exponent = frexp(xp.where(fine, biggest, xp.ones_like(biggest)), xp=xp)[1]
    sigma = power_of_two(exponent + float(shift), xp=xp)
    return _extracted_levels(x, levels, unit, xp=xp, start=(sigma, shift))


def _shift32(x: Array) -> int:
    r""":math:`M`, :math:`2^M \ge n + 2` for rows of ``n`` classes (at least 1); rows of
    more than :math:`2^{20} - 2` classes are refused (``ValueError``)."""
    n = int(x.shape[-1])
    shift = max(1, math.ceil(math.log2(n + 2)))
    if shift > 20:
        raise ValueError(f"extract_levels32 takes at most 2^20 - 2 entries a row; got {n}")
    return shift


def rounded_sum(columns: list[Array], *, passes: int = 3) -> Array:
    r"""The sum of arrays ``columns`` (one shape, a handful of them), rounded to within
    about an ulp: Ogita, Rump and Oishi's SumK (``passes`` + 1 = K) [6]_, ``passes``
    sweeps of TwoSums (:func:`two_sum`, error-free: each keeps the exact sum) carrying
    the errors down, then the float sum. Error at most :math:`(u + \gamma_{k-1}^2)|s|
    + \gamma_{2k-2}^{K}\sum_i|c_i|` (:math:`\gamma_j = ju/(1 - ju)`, :math:`k`
    columns): for 20 float32 columns and three passes :math:`2^{-75}\sum_i|c_i|`.

    :func:`_distilled` to two words with ``passes`` sweeps, added: the sweeps carry the
    sum to the last column, the float sum of the others is the second word (issue 13,
    branch dedup2: one home for the sweeps; the same operations in the same order, so
    the same bits, eager or traced)."""
    if len(columns) < 2:
        return columns[0]
    top, rest = _distilled(columns, 2, passes=passes)
    return top + rest


def _distilled(words: list[Array], count: int, *, passes: int = 2) -> list[Array]:
    r"""``count`` words whose sum is that of ``words`` (listed from the smallest to the
    largest in magnitude, roughly): ``passes`` sweeps of TwoSums (:func:`two_sum`,
    error-free) carry the sum to the last word, which is taken (then nearly the rounded
    sum), and so on; the last word returned is the float sum of what is left. With
    :math:`k` float32 words and two passes the words returned fall by about :math:`ku`
    each, the last one's rounding :math:`u` of it. :func:`rounded_sum` is this to two
    words, added (three or four passes: SumK). A Python loop over a list of arrays,
    traceable by ``jax.jit`` (no value read)."""
    words = list(words)
    out = []
    for _ in range(count - 1):
        for _ in range(passes):
            for i in range(1, len(words)):
                words[i], words[i - 1] = two_sum(words[i], words[i - 1])
        out.append(words.pop())
    tail = words[0]
    for word in words[1:]:
        tail = tail + word
    return [*out, tail]


_TRIPLE_STEPS = 4096
r"""Table entries of :func:`exp_triple32`: :math:`2^{j/4096}`, :math:`0 \le j < 4096`."""


@functools.cache
def _exp_triple32_constants() -> tuple[tuple[float, ...], np.ndarray]:
    r""":math:`\ln 2/4096` as four float32 parts (each the rounded rest) and the table
    :math:`2^{j/4096}` as float32 triples, shape ``(3, 4096)`` (from 60 digits, once)."""
    with localcontext() as ctx:
        ctx.prec = 60
        rest = Decimal(2).ln() / _TRIPLE_STEPS
        parts = []
        for _ in range(4):
            part = float(np.float32(float(rest)))
            parts.append(part)
            rest -= Decimal(part)
        base = Decimal(2) ** (Decimal(1) / _TRIPLE_STEPS)
        value, rows = Decimal(1), []
        for _ in range(_TRIPLE_STEPS):
            left, words = value, []
            for _ in range(3):
                word = float(np.float32(float(left)))
                words.append(word)
                left -= Decimal(word)
            rows.append(words)
            value *= base
    return tuple(parts), np.array(rows, dtype=np.float32).T.copy()


def exp_triple32(y: Array, *, xp: ModuleType) -> tuple[Array, Array, Array]:
    r""":math:`e^y` of float32 :math:`y` as three float32 words ``(hi, mid, lo)``,
    within about :math:`2^{-70}` of itself (Tang's table method [5]_ in triple-float;
    branch jaxkl1: the mass :math:`\sum_i e^{v_i}` of a side of float32
    log-probabilities enters a KL to first order, and a KL of rows :math:`10^{-7}`
    apart, about :math:`10^{-14}`, has float32 ulps of :math:`2^{-70}`;
    :func:`exp_pair32` is :math:`2^{-44}`).

    :math:`y = N\ln 2/4096 + r`, :math:`N = 4096k + j` (:math:`|N| < 2^{19}`),
    :math:`e^y = 2^k\,T_j\,(1 + m)`, :math:`m = \operatorname{expm1} r`,
    :math:`|r| \le 2^{-13.5}`. :math:`\ln 2/4096 = c_1 + c_2 + c_3 + c_4` (float32
    parts), :math:`Nc_i` exact pairs (:func:`two_product32`), :math:`y - \operatorname{fl}
    (Nc_1)` exact (Sterbenz), and their words distilled to a triple :math:`r_1 + r_2 +
    r_3` (:func:`_distilled`). :math:`m = r + r^2/2 + r^3/6 + r^4/24 + r^5/120` (the
    rest below :math:`2^{-90}`): :math:`r_1^2`, :math:`r_1 r_2` and :math:`r_1^2 \cdot
    r_1` exact pairs, :math:`1/6` a pair, the other pieces (each under
    :math:`2^{-58}`) in floats; then :math:`T_j(1 + m)` (a table of float32 triples,
    :math:`2^{-96}` of :math:`T_j`) with the products above :math:`2^{-60}` of it exact,
    distilled to three words, times :math:`2^k` (``ldexp``: exact for :math:`y \ge
    -87`). :math:`y < -87` and :math:`y > 88` give the rounded ``exp`` and zero words
    below; ``-inf`` 0; NaN NaN."""
    (c1, c2, c3, c4), table = _exp_triple32_constants()
    zero = xp.zeros_like(y)
    plain = xp.exp(y)
    inside = (y >= -87.0) & (y <= 88.0)
    ys = xp.where(inside, y, zero)
    n = xp.round(ys * float(_TRIPLE_STEPS / math.log(2.0)))
    first, first_lo = two_product32(n, zero + c1)
    second, second_lo = two_product32(n, zero + c2)
    third, third_lo = two_product32(n, zero + c3)
    words = [-(n * c4), -third_lo, -third, -second_lo, -second, -first_lo, ys - first]
    r1, r2, r3 = _distilled(words, 3)
    square, square_lo = two_product32(r1, r1)
    cross, cross_lo = two_product32(r1, r2)
    cube, cube_lo = two_product32(square, r1)
    c6 = float(np.float32(1.0 / 6.0))
    c6_lo = float(np.float32(1.0 / 6.0 - c6))
    sixth, sixth_lo = two_product32(cube, zero + c6)
    small = (
        (r2 * r2) * 0.5
        + r1 * r3
        + cube * c6_lo
        + cube_lo * (1.0 / 6.0)
        + square_lo * r1 * (1.0 / 6.0)
        + square * r2 * 0.5
        + (square * square) * (1.0 / 24.0 + r1 * (1.0 / 120.0))
    )
    m1, m2, m3 = _distilled(
        [small, sixth_lo, cross_lo, 0.5 * square_lo, r3, sixth, cross, r2, 0.5 * square, r1], 3
    )
    shape = tuple(y.shape)
    whole = xp.astype(n, xp.int32)
    j = whole - _TRIPLE_STEPS * (whole // _TRIPLE_STEPS)
    k = xp.astype((whole - j) // _TRIPLE_STEPS, y.dtype)
    index = xp.reshape(j, (-1,))
    t1, t2, t3 = (
        xp.reshape(xp.take(xp.asarray(row, device=device(y)), index, axis=0), shape)
        for row in table
    )
    a, a_lo = two_product32(t1, m1)
    b, b_lo = two_product32(t1, m2)
    c, c_lo = two_product32(t2, m1)
    low = t1 * m3 + t2 * m2 + t3 * m1
    e1, e2, e3 = _distilled([low, a_lo, b_lo, c_lo, t3, b, c, t2, a, t1], 3)
    scale = power_of_two32(k, xp=xp)  # (k in [-126, 127]: y in [-87, 88])
    e1, e2, e3 = held32(e1 * scale, e2 * scale, e3 * scale, xp=xp)  # (finite)
    return xp.where(inside, e1, plain), xp.where(inside, e2, zero), xp.where(inside, e3, zero)
