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
  rounded once) and :func:`exp_dd` (Tang's table method in double-double:
  :math:`2^{-100}` relative), with :func:`expm1_reduced` its core;
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
"""

from __future__ import annotations

import functools
import math
from decimal import Decimal, localcontext
from fractions import Fraction
from types import ModuleType
from typing import Any

from ._xp import Array, device, settled

__all__ = [
    "ATANH_SERIES",
    "LN2_HI",
    "LN2_LO",
    "dd_mul_add",
    "excess_of_pairs",
    "exp_constants",
    "exp_dd",
    "exp_parts",
    "exp_residual",
    "exp_rounded",
    "expm1_reduced",
    "frexp",
    "log_dd",
    "log_p_dd",
    "power_of_two",
    "quick_two_sum",
    "split",
    "sum_dd",
    "two_product",
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
"""Table entries of :func:`exp_dd`: :math:`2^{j/64}`, :math:`0 \\le j < 64`."""


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
    for :math:`|n| < 2^{17}`), from :mod:`decimal` at 60 digits (once)."""
    with localcontext() as context:
        context.prec = 60
        steps = [_dd_of(Decimal(2) ** (Decimal(j) / _STEPS)) for j in range(_STEPS)]
        step = Decimal(2).ln() / _STEPS
        parts = []
        for _ in range(2):
            exponent = math.frexp(float(step))[1]
            part = math.ldexp(round(math.ldexp(float(step), 36 - exponent)), exponent - 36)
            parts.append(part)
            step -= Decimal(part)
        parts.append(float(step))
    return (
        tuple(h for h, _ in steps),
        tuple(lo for _, lo in steps),
        (parts[0], parts[1], parts[2]),
    )


_TAYLOR = tuple(_dd_of(Fraction(1, math.factorial(k))) for k in (5, 4, 3, 2, 1))
""":math:`1/k!`, :math:`k = 5, \\dots, 1` as pairs (Horner's order)."""
_TAIL = tuple(1.0 / math.factorial(k) for k in (11, 10, 9, 8, 7, 6))
""":math:`1/k!`, :math:`k = 11, \\dots, 6` (floats: their part is below :math:`4\\cdot
10^{-17}` of the series)."""


def expm1_reduced(t_hi: Array, t_lo: Array, *, xp: ModuleType) -> tuple[Array, Array]:
    r""":math:`e^t - 1` of a float64 pair :math:`t = t_{hi} + t_{lo}`,
    :math:`|t| \le \ln 2/128`, as a double-double, about :math:`2^{-100}` of itself:
    :math:`t\sum_{i \ge 1} t^{i-1}/i!` by Horner's scheme, the terms :math:`i \le 5`
    in double-double (:func:`dd_mul_add`), the rest in floats (the series cut after
    :math:`i = 11`: :math:`3\cdot 10^{-33}`). The core of :func:`exp_dd`; alone, it
    keeps the digits of :math:`e^t` near 1 that :func:`exp_dd`'s float ``lo`` rounds
    (``info/_kl_mixed``)."""
    zero = xp.zeros_like(t_hi)
    tail = zero
    for c in _TAIL:
        tail = c + t_hi * tail
    a = (tail, zero)
    t = (t_hi, t_lo)
    for c_hi, c_lo in _TAYLOR:
        a = dd_mul_add(a, t, (xp.full_like(t_hi, c_hi), xp.full_like(t_hi, c_lo)))
    return dd_mul_add(a, t, (zero, zero))


def exp_dd(y: Array, *, xp: ModuleType) -> tuple[Array, Array]:
    r""":math:`e^y` of float64 :math:`y \le 0` as a double-double ``hi + lo``, about
    :math:`2^{-100}` relative where it is normal (Tang's table method): :math:`y =
    n\ln 2/64 + t`, :math:`|t| \le \ln 2/128`, :math:`t` a pair (the products by the
    36-bit parts exact, the first difference exact); :math:`e^y = 2^k\, 2^{j/64}\,
    e^t`, :math:`n = 64k + j`, the table from :func:`exp_constants`, :math:`e^t - 1` by
    :func:`expm1_reduced`. The fused kernel's ``_exp_dd``, branch-free. ``-inf`` gives
    0; a NaN, NaN."""
    steps_hi, steps_lo, (l1, l2, l3) = exp_constants()
    where = device(y)
    finite = y > -800.0  # (below: e^y is 0; NaN stays, by the product with y)
    y0 = xp.where(finite, y, xp.zeros_like(y))
    n = xp.round(y0 * (_STEPS / math.log(2.0)))
    k = xp.floor(n / _STEPS)
    j = n - _STEPS * k
    t_hi, t_lo = two_sum(y0 - n * l1, -(n * l2))
    t_hi, t_lo = quick_two_sum(t_hi, t_lo - n * l3)
    m_hi, m_lo = expm1_reduced(t_hi, t_lo, xp=xp)
    index = xp.reshape(xp.astype(j, xp.int64), (-1,))
    table_hi = xp.asarray(steps_hi, dtype=y.dtype, device=where)
    table_lo = xp.asarray(steps_lo, dtype=y.dtype, device=where)
    s_hi = xp.reshape(xp.take(table_hi, index, axis=0), y.shape)
    s_lo = xp.reshape(xp.take(table_lo, index, axis=0), y.shape)
    hi, lo = dd_mul_add((s_hi, s_lo), (m_hi, m_lo), (s_hi, s_lo))  # 2^(j/64) e^t
    # 2^k exactly, in two halves (each normal) where 2^k alone underflows
    two = xp.asarray(2.0, dtype=y.dtype, device=where)
    half = xp.floor(k / 2)
    first, second = xp.pow(two, half), xp.pow(two, k - half)
    outside = xp.where(xp.isnan(y), y, xp.zeros_like(y0))
    return (
        xp.where(finite, hi * first * second, outside),
        xp.where(finite, lo * first * second, outside),
    )


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
    shift = max(2, math.ceil(math.log2(int(hi.shape[-1]) + 2)))
    taus = []
    sigma = 2.0 ** (shift + 1)
    rest = hi
    for _ in range(2):
        (raised,) = settled(sigma + rest)  # (XLA would fold (s + x) - s to x)
        top = raised - sigma
        taus.append(xp.sum(top, axis=-1))
        rest = rest - top
        sigma *= 2.0**shift * _U64
    tail = xp.sum(rest, axis=-1) + xp.sum(lo, axis=-1)
    return ((taus[0] - 1.0) + taus[1]) + tail
