r"""Sigmoid cross-entropy gradients exact where :math:`\sigma(x)` meets :math:`t`: float32
within an ulp, float64 within a few ulps (issue 13 follow-up: the soft-target
cancellation).

The gradient of :math:`w\,[\pi\,t\,\operatorname{sp}(-x) + (1-t)\operatorname{sp}(x)]` is
:math:`w\,[(1-t)\,\sigma(x) - \pi\,t\,\sigma(-x)]`. Formed in the inputs' precision from
:math:`\sigma(\pm x)` of that precision, the difference cancels where the target is within
a few ulps of :math:`\sigma(x)` (with ``pos_weight``, of :math:`1/(1 + \pi e^{-x})`): each
term is good to an ulp of itself, the difference is a few ulps of it, so the entry was
hundreds to millions of float32 ulps off, and up to :math:`10^{17}` float64 ulps in float64
(Torch's own gradients are, for the same reason).

Here, with :math:`u = e^{-|x|} \in [0, 1]` (no overflow for any :math:`x`) and the identity
:math:`(1 + u)\,\sigma(\pm|x|) \in \{1, u\}`:

.. math:: \frac{\partial\ell}{\partial x} = w\,s\,\frac{N}{1 + u},\qquad
          N = \begin{cases} (1 - t) - \pi t\,u & x \ge 0\\ (1 - t)\,u - \pi t & x < 0
          \end{cases}

(:math:`s` the reduction's and unit's scale, :math:`t` the smoothed target
:math:`(1-\varepsilon)t + \varepsilon/2`). Only :math:`N` can cancel; :math:`1 + u \in [1, 2]`
and the products cannot. Every entry is computed in float64 and rounded once to the
inputs' dtype:

* :math:`N` in float64 with :math:`u` from ``exp``: its error is a few float64 ulps of
  :math:`M = \max` of its two terms (and, with smoothing, of :math:`t` or :math:`tu`,
  whose rounding :math:`1 - t` inherits);
* where :math:`|N| < c M`, :math:`N` again by :func:`numerator_dd`, to about
  :math:`2^{-110} M`, then rounded to float64: :math:`c = 2^{-20}` (:data:`CLOSE`) for
  float32 inputs (the float64 error could otherwise reach :math:`2^{-29}|N|`), :math:`c
  = 1/2` (:data:`CLOSE64`) for float64 inputs (elsewhere the float64 :math:`N` is within
  about 5 ulps of itself at worst, 1-2 in practice). :func:`numerator_dd`: :math:`-|x| =
  (1024 k + j)\ln 2/1024 + r` (four parts of :math:`\ln 2/1024`, exact products),
  :math:`2^{j/1024}` from a table of triple-doubles (:func:`tables`, from ``decimal``),
  :math:`e^r - 1` by Horner's scheme (:math:`|r| \le 2^{-11.5}`, :math:`r^n/n!` in
  double-double for :math:`n \le 4`, floats to :math:`n = 8`), so :math:`u = 2^k v` with
  :math:`v` as three floats; the smoothed target as three floats (:func:`_smoothed`); then
  :math:`F v - G` (:math:`F, G` the terms' coefficients, :math:`2^k` moved into
  :math:`F`) from Dekker's exact products and an exact-transform sum, so the cancelling
  leading parts lose nothing. That is within a thirty-second of a float32 ulp wherever
  :math:`|N| \ge 2^{-91} M`, and within a float64 ulp of :math:`N` wherever
  :math:`|N| \ge 2^{-57} M` (a target at the float64 :math:`\sigma(x)` has :math:`|N|`
  about :math:`2^{-54} M`: 2 ulps at :math:`2^{-60} M`). Entries with :math:`|x| > 700`
  (:data:`EXP_FLOOR`) or a ``pos_weight`` from :math:`2^{990}` (:data:`HUGE`) keep the
  float64 :math:`N` (absolute error below :math:`2^{-1000}`; Dekker's products overflow);
* :math:`N/(1+u)`, times :math:`w` and :math:`s` (:math:`1/\sum w` in float64, not rounded
  to float32 first; over :math:`\ln b`), each a float64 rounding: the float32 result is
  within :math:`0.5 + 2^{-5}` ulp of the exact gradient of the float32 inputs, the float64
  one within about 3 ulps (tested: 4).

Soft float32 targets whose :math:`\sigma(x)` lands that close are rare (about one entry in
a million of uniform targets is re-done); a target set to the float32 :math:`\sigma(x)`
(self-distillation, calibrated labels) re-does every entry. The Numba kernel screens the
entries block by block (``_sigmoid_grad_numba.BLOCK``) and forms the flagged ones together
in a loop without branches that LLVM vectorises: about 3x the common case's time (it was
20-35x with a per-entry double-double exponential of eight squarings).

This module holds the array-API form (NumPy without Numba; PyTorch, array-api-strict and
other libraries with float64, in their own namespace); ``_sigmoid_grad_numba`` holds the
same arithmetic per entry (the same operations in the same order: the same bits of
:func:`numerator_dd`), the path of NumPy float32 and float64 calls, large (the full
path) and small (``_small_sigmoid``), so that those two stay the same bits.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from .._checks import ValuelessArrayError, truth_of
from .._numerics import _quick_two_sum, _two_product, _two_sum
from .._xp import Array, astype, device
from ._reduction import weighted_gradient

__all__ = [
    "CLOSE",
    "CLOSE64",
    "DD_TERMS",
    "EXP_FLOOR",
    "HUGE",
    "INVERSE_FACTORIALS",
    "STEPS",
    "Tables",
    "exp_dd",
    "exp_parts",
    "gradient",
    "kernel_gradient",
    "numerator_dd",
    "tables",
]

CLOSE = 2.0**-20
"""float32 inputs: entries with :math:`|N| <` ``CLOSE`` :math:`\\cdot M` are formed again by
:func:`numerator_dd`."""

CLOSE64 = 2.0**-1
"""float64 inputs: the same, from :math:`|N| <` ``CLOSE64`` :math:`\\cdot M` (the float64
:math:`N` is a few float64 ulps of :math:`M` off: within a few ulps of :math:`N` only
where the two terms are far apart)."""

EXP_FLOOR = -700.0
""":math:`-|x|` is taken no lower (:math:`e^{-700}` is a normal float64; an entry there with
a cancelling :math:`N` needs :math:`\\pi t/(1-t)` below float64's normal range)."""

STEPS = 1024
""":math:`e^{-|x|}` is reduced by multiples of :math:`\\ln 2/1024` (a table of
:math:`2^{j/1024}`, 24 KiB)."""

HUGE = 2.0**990
"""Entries with a larger ``pos_weight`` keep the float64 :math:`N` (Dekker's products
overflow from :math:`2^{996}`; float32 weights are far below)."""

DD_TERMS = 4
"""The Taylor terms :math:`r^n/n!`, :math:`n \\le` ``DD_TERMS``, are summed in
double-double (the rest, below :math:`2^{-64}`, in floats)."""


def _inverse_factorial(n: int) -> tuple[float, float]:
    """:math:`1/n!` as a double-double ``(hi, lo)``."""
    exact = Fraction(1, math.factorial(n))
    hi = float(exact)
    return hi, float(exact - Fraction(hi))


INVERSE_FACTORIALS = tuple(_inverse_factorial(n) for n in range(1, 9))
""":math:`1/1!, \\ldots, 1/8!` as double-doubles (:math:`(\\ln 2/2048)^9/9! < 2^{-122}`)."""


class Tables(NamedTuple):
    """The constants of :func:`numerator_dd`, as float64 NumPy arrays."""

    exp2: np.ndarray  # (3, STEPS): 2^(j/STEPS) as triple-doubles, to about 2^-158
    ln2: np.ndarray  # (4,): ln 2 / STEPS in four parts, the first three of 33 bits


@functools.cache
def tables() -> Tables:
    """:class:`Tables`, from 60 significant digits (``decimal``; about 16 ms, once)."""
    import decimal  # (here: ``import crossent`` does not import it)

    context = decimal.Context(prec=60)
    step = context.power(decimal.Decimal(2), decimal.Decimal(1) / STEPS)
    value, rows = decimal.Decimal(1), []
    for _ in range(STEPS):
        rows.append(_parts(Fraction(value), 3, None))
        value = context.multiply(value, step)
    ln2 = Fraction(context.ln(decimal.Decimal(2))) / STEPS
    return Tables(np.array(rows).T.copy(), np.array(_parts(ln2, 4, 33)))


def _parts(value: Fraction, count: int, bits: int | None) -> list[float]:
    """``value`` as ``count`` floats, each the rest rounded (to ``bits`` significant bits,
    but for the last)."""
    out = []
    for i in range(count):
        if bits is None or i == count - 1:
            part = float(value)
        else:
            quantum = Fraction(2) ** (math.floor(math.log2(abs(value))) - bits + 1)
            part = float(round(value / quantum) * quantum)
        out.append(part)
        value -= Fraction(part)
    return out


# Double-double arithmetic with the operators only (NumPy arrays, other libraries' arrays
# and Python floats alike): ``_numerics``' error-free sums and products (Knuth's TwoSum,
# the quick sum for |a| >= |b|, Dekker's product for |a|, |b| < 2**996).
# ``_sigmoid_grad_numba`` has the same functions per entry.


def _dd_mul_d(ah: Any, al: Any, b: Any) -> tuple[Any, Any]:
    """A double-double times a double."""
    p, e = _two_product(ah, b)
    return _quick_two_sum(p, e + al * b)


def _dd_mul_add(ah: Any, al: Any, b: Any, ch: Any, cl: Any) -> tuple[Any, Any]:
    """A Horner step: the double-double ``c + a b`` for ``|a b| < |c|`` (one
    renormalisation: the product's and the sum's errors gathered first)."""
    p, e = _two_product(ah, b)
    s, f = _quick_two_sum(ch, p)
    return _quick_two_sum(s, f + ((e + al * b) + cl))


def numerator_dd(x: Array, t: Array, pos_weight: Any, eps: float, *, xp: ModuleType) -> Array:
    r""":math:`N` of the module notes to about :math:`2^{-110} M`, rounded to float64.

    ``x`` and ``t`` are float64 arrays (``t`` before smoothing), ``pos_weight`` one
    broadcast to them (or 1.0); ``eps`` the label smoothing. The steps (the module notes
    give the error budget; ``_sigmoid_grad_numba.numerators`` does the same operations
    in the same order, so the same bits):

    1. :math:`y = \max(-|x|, -700) = (1024k + j)\,\ln 2/1024 + r`, :math:`0 \le j <
       1024`, :math:`|r| \le \ln 2/2048`, :math:`r` a double-double (:math:`\ln 2/1024`
       in four parts, the first three of 33 bits: their products by :math:`|1024k + j|
       < 2^{20}` and the first difference exact);
    2. :math:`E = e^r - 1` by Horner's scheme, :math:`r^n/n!` for :math:`n \le 4` in
       double-double (:func:`_dd_mul_add`), :math:`5 \le n \le 8` in floats (the rest
       under :math:`2^{-122}`);
    3. :math:`v = 2^{j/1024}(1 + E)` as three floats (the table's triple-double);
    4. with :math:`F, G` the three-float :math:`\pi t\,2^k, 1 - t` (:math:`x \ge 0`) or
       :math:`(1-t)\,2^k, \pi t` (:math:`x < 0`; :func:`_smoothed`): :math:`Fv - G` from
       Dekker's exact products and Knuth's exact sums, the rounding errors gathered
       and added last, so the cancelling leading terms lose nothing.

    Valid for :math:`|x| \le 700` and ``pos_weight`` below :data:`HUGE`.
    """
    tab = tables()
    a, b = _smoothed(t, pos_weight, eps)
    nonneg = x >= 0
    y = xp.clip(-xp.abs(x), min=EXP_FLOOR)
    n = xp.floor(y * (STEPS / math.log(2.0)) + 0.5)
    j = n - STEPS * xp.floor(n / STEPS)
    power = _power_of_two((n - j) / STEPS, xp=xp)
    c0, c1, c2, c3 = (float(v) for v in tab.ln2)
    index = xp.astype(j, xp.int64) if type(j) is not np.ndarray else j.astype(np.intp)
    t0, t1, t2 = (_take(tab.exp2[i], index, like=x, xp=xp) for i in range(3))
    v = _exp_parts(y, n, t0, t1, t2, (c0, c1, c2, c3))
    return _numerator_tail(v, power, nonneg, a, b, where=xp.where)


def exp_dd(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r""":math:`e^y` as a double-double ``(hi, lo)`` for float64 NumPy ``y`` in
    :math:`[` :data:`EXP_FLOOR` :math:`, 0]`, to about :math:`2^{-104}` of it
    (:func:`exp_parts` renormalised)."""
    v0, v1, v2, power = exp_parts(y)
    hi, lo = _quick_two_sum(v0, v1 + v2)
    return hi * power, lo * power


def exp_parts(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""``(v0, v1, v2, power)`` with :math:`e^y = \mathrm{power}\,(v_0 + v_1 + v_2)` for
    float64 NumPy ``y`` in :math:`[` :data:`EXP_FLOOR` :math:`, 0]`: steps 1-3 of
    :func:`numerator_dd` (its table and Taylor terms), within about :math:`2^{-117}` of
    :math:`2^{j/1024}` plus :math:`2^{-106}` of :math:`e^r - 1` (so :math:`e^y - 1` to
    about :math:`2^{-106}` of itself: :math:`j = 0` below :math:`\ln 2/2048`)."""
    tab = tables()
    n = np.floor(y * (STEPS / math.log(2.0)) + 0.5)
    j = n - STEPS * np.floor(n / STEPS)
    power = _power_of_two((n - j) / STEPS, xp=np)
    index = j.astype(np.intp)
    t0, t1, t2 = (tab.exp2[i][index] for i in range(3))
    v0, v1, v2 = _exp_parts(y, n, t0, t1, t2, tuple(float(c) for c in tab.ln2))
    return v0, v1, v2, power


def _smoothed(t: Any, pi: Any, eps: float) -> tuple[tuple[Any, Any, Any], tuple[Any, Any, Any]]:
    r""":math:`1 - t_s` and :math:`\pi t_s` of the smoothed target :math:`t_s = (1 -
    \varepsilon)t + \varepsilon/2`, each as three floats whose sum is exact but for
    about :math:`2^{-150}` of it (a double-double of :math:`t_s` is :math:`2^{-106}` off,
    two float64 ulps of a cancelling :math:`N`)."""
    kh, kl = _two_sum(1.0, -eps)  # 1 - eps, exactly
    p1, e1 = _two_product(kh, t)
    p2, e2 = _two_product(kl, t)
    s, e = _two_sum(p1, 0.5 * eps)
    m, f = _two_sum(e, e1)
    m, g = _two_sum(m, p2)
    lo = (f + g) + e2
    th, tm = _quick_two_sum(s, m)  # t_s = th + tm + lo
    a0, a1 = _two_sum(1.0, -th)
    a1, a2 = _two_sum(a1, -tm)
    a0, a1 = _two_sum(a0, a1)
    b0, b1 = _two_product(pi, th)
    c0, c1 = _two_product(pi, tm)
    b1, b2 = _two_sum(b1, c0)
    b0, b1 = _quick_two_sum(b0, b1)
    return (a0, a1, a2 - lo), (b0, b1, (b2 + c1) + pi * lo)


def _exp_parts(y: Any, n: Any, t0: Any, t1: Any, t2: Any, ln2: Any) -> tuple[Any, Any, Any]:
    """Steps 1-3 of :func:`numerator_dd` after the table look-ups (arrays or floats):
    :math:`2^{j/1024} e^r` as three floats (times ``power``, :math:`e^y`)."""
    c0, c1, c2, c3 = ln2
    s = y - n * c0  # (exact: Sterbenz)
    rh, rl = _two_sum(s, -(n * c1))
    rh, e = _two_sum(rh, -(n * c2))
    rh, rl = _quick_two_sum(rh, (rl + e) - n * c3)
    q = INVERSE_FACTORIALS[-1][0]
    for hi, _ in INVERSE_FACTORIALS[-2 : DD_TERMS - 1 : -1]:
        q = hi + rh * q
    ph, pl = q, 0.0 * q
    for hi, lo in INVERSE_FACTORIALS[DD_TERMS - 1 :: -1]:
        ph, pl = _dd_mul_add(ph, pl, rh, hi, lo)
    eh, el = _dd_mul_d(ph, pl, rh)  # expm1(rh)
    eh, el = _quick_two_sum(eh, el + rl * (1.0 + eh))  # expm1(rh + rl)
    d0, d1 = _two_product(t0, eh)
    v0, e0 = _quick_two_sum(t0, d0)
    v1, v2 = _two_sum(e0, t1)
    v2 = v2 + (d1 + (t0 * el + t1 * eh) + t2)  # 2^(j/1024) e^r = v0 + v1 + v2
    return v0, v1, v2


def _numerator_tail(
    v: tuple[Any, Any, Any],
    power: Any,
    nonneg: Any,
    a: tuple[Any, Any, Any],
    b: tuple[Any, Any, Any],
    *,
    where: Any,
) -> Any:
    """Step 4 of :func:`numerator_dd` (arrays or floats)."""
    v0, v1, v2 = v
    fh, fl, f2 = (where(nonneg, bi, ai) * power for ai, bi in zip(a, b, strict=True))
    gh, gl, g2 = (where(nonneg, ai, bi) for ai, bi in zip(a, b, strict=True))
    p0, p1 = _two_product(fh, v0)
    q0, q1 = _two_product(fh, v1)
    r0, r1 = _two_product(fl, v0)
    small = ((fh * v2 + fl * v1) + f2 * v0) + ((q1 + r1) - g2)
    a, ea = _two_sum(p0, -gh)  # F V - G: its leading terms' and small terms' exact sums
    b, eb = _two_sum(p1, -gl)
    c, ec = _two_sum(q0, r0)
    b, ebc = _two_sum(b, c)
    s, es = _two_sum(a, b)
    total = s + ((((ea + eb) + ec) + ebc) + es + small)
    return where(nonneg, -total, total)


def _take(table: np.ndarray, index: Any, *, like: Any, xp: ModuleType) -> Any:
    """``table[index]`` in ``like``'s namespace and device."""
    if type(index) is np.ndarray:
        return table[index]
    flat = xp.take(xp.asarray(table, device=device(like)), xp.reshape(index, (-1,)))
    return xp.reshape(flat, tuple(index.shape))  # (take: 1-d indices)


def _power_of_two(k: Array, *, xp: ModuleType) -> Array:
    r""":math:`2^k` for integer-valued float64 ``k`` in :math:`[-1023, 0]`, exactly:
    ``ldexp`` for NumPy, else a product of :math:`2^{-2^j}` over the bits of :math:`-k`
    (XLA's ``pow`` is :math:`e^{k \ln 2}`, not exact)."""
    if type(k) is np.ndarray:
        return np.ldexp(1.0, k.astype(np.int32))
    m = -k
    one = xp.ones_like(k)
    power = one
    for j in range(10):
        bit = xp.remainder(xp.floor(m * 2.0**-j), 2.0)
        power = power * xp.where(bit == 1.0, xp.full_like(k, 2.0 ** -(2**j)), one)
    return power


def gradient(
    x: Array,
    t: Array,
    *,
    weight: Array | None,
    pos_weight: Array | None,
    eps: float,
    scale: Any,
    xp: ModuleType,
    wide: Any,
    upstream: Array | None = None,
    out_dtype: Any = None,
) -> Array:
    """The gradient of float32 (or float16) ``x`` and raw targets ``t`` (weights
    broadcastable, float32; ``scale`` the reduction's float64 factor), computed in ``wide``
    (float64), times ``upstream`` there (``crossent.torch``'s backward), rounded once to
    ``out_dtype`` (``x``'s by default)."""
    x64, t64 = astype(x, wide, xp=xp), astype(t, wide, xp=xp)
    target = (1.0 - eps) * t64 + 0.5 * eps
    u = xp.exp(-xp.abs(x64))
    a = 1.0 - target
    if eps:
        # Past the double-double's range (|x| > -EXP_FLOOR, an infinite logit) 1 - t_s is
        # the numerator itself: as (1 - eps)(1 - t) + eps/2 there, not 1 - fl(t_s), whose
        # rounding gave 1.3e6 ulps at t = 1, eps = 1e-6 (issue 13, branch hostile1)
        a = xp.where(xp.abs(x64) > -EXP_FLOOR, (1.0 - eps) * (1.0 - t64) + 0.5 * eps, a)
    pw = 1.0 if pos_weight is None else astype(pos_weight, wide, xp=xp)
    p = target if pos_weight is None else pw * target
    nonneg = x64 >= 0
    first = xp.where(nonneg, a, a * u)
    second = xp.where(nonneg, p * u, p)
    n = first - second
    most = xp.maximum(first, second)
    if eps:  # (1 - t_s is off by t_s's rounding, a float64 ulp of t_s)
        most = xp.maximum(most, xp.where(nonneg, target, target * u))
    bound = CLOSE64 if x.dtype == wide else CLOSE
    close = (xp.abs(n) < bound * most) & (xp.abs(x64) <= -EXP_FLOOR)
    if pos_weight is not None:  # (Dekker's products: below 2**996)
        close = close & (pw < HUGE)
    if type(close) is np.ndarray:
        if close.any():
            pw_close = pw if pos_weight is None else np.broadcast_to(pw, x.shape)[close]
            n[close] = numerator_dd(x64[close], t64[close], pw_close, eps, xp=xp)
    else:
        found = _any(close, xp=xp)
        if found is not False:
            pw_all = pw if pos_weight is None else xp.broadcast_to(pw, tuple(x.shape))
            if found is None:  # (no values to read: every entry)
                n = xp.where(close, numerator_dd(x64, t64, pw_all, eps, xp=xp), n)
            else:
                n = _redone(n, close, x64, t64, pw_all, eps, xp=xp)
    d = n / (1.0 + u)
    if weight is not None:
        d = weighted_gradient(astype(weight, wide, xp=xp), d, xp=xp)
    if upstream is not None:
        d = d * astype(upstream, wide, xp=xp)
    return astype(d * scale, x.dtype if out_dtype is None else out_dtype, xp=xp)


def _any(mask: Array, *, xp: ModuleType) -> bool | None:
    """Whether any entry of ``mask`` is true; None where the values cannot be read (a
    traced array, vmap's batched tensors), which then take the double-double
    everywhere."""
    try:
        return truth_of(xp.any(mask))
    except ValuelessArrayError:
        return None


def _redone(
    n: Array, close: Array, x: Array, t: Array, pw: Any, eps: float, *, xp: ModuleType
) -> Array:
    """``n`` with its ``close`` entries formed again by :func:`numerator_dd`, on those
    entries alone (the array API has no scatter: the i-th close entry is taken back to
    its place by the running count of close entries)."""
    flat = xp.reshape(close, (-1,))
    (where,) = xp.nonzero(flat)

    def picked(a: Any) -> Any:
        return a if isinstance(a, float) else xp.take(xp.reshape(a, (-1,)), where)

    redone = numerator_dd(picked(x), picked(t), picked(pw), eps, xp=xp)
    rank = xp.cumulative_sum(xp.astype(flat, xp.int64)) - 1
    back = xp.take(redone, xp.clip(rank, min=0))
    return xp.where(close, xp.reshape(back, tuple(n.shape)), n)


def kernel_gradient(
    x: np.ndarray,
    t: np.ndarray,
    weight: np.ndarray | None,
    pos_weight: np.ndarray | None,
    eps: float,
    scale: float,
) -> np.ndarray:
    """:func:`gradient` of float32 or float64 NumPy arrays (the weights cast to ``x``'s
    dtype) by ``_sigmoid_grad_numba`` (Numba installed): the full path's, and
    ``crossent.torch``'s for CPU tensors."""
    from . import _sigmoid_grad_numba

    dtype = np.dtype(np.float64 if x.dtype == np.float64 else np.float32)
    flat_x = np.ascontiguousarray(x, dtype=dtype).reshape(-1)
    flat_t = np.ascontiguousarray(t, dtype=dtype).reshape(-1)
    out = np.empty(flat_x.shape, dtype=dtype)
    _sigmoid_grad_numba.gradient(
        flat_x,
        flat_t,
        _flat_pattern(weight, x.shape, dtype),
        _flat_pattern(pos_weight, x.shape, dtype),
        eps,
        scale,
        out,
    )
    return out.reshape(x.shape)


def _flat_pattern(
    w: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype
) -> tuple[np.ndarray, int, int]:
    """A weight as ``_sigmoid_grad_numba.gradient`` takes it: ``(flat, inner, count)``
    (``_small_sigmoid``'s pattern of a weight of ``dtype``, or a broadcast copy in it),
    empty for none."""
    from . import _small_sigmoid

    if w is None:
        return np.empty(0, dtype=dtype), 1, 1
    found = _small_sigmoid.pattern(w, shape, dtype.char)
    if found is not None:
        return found
    full = np.ascontiguousarray(np.broadcast_to(w, shape), dtype=dtype).reshape(-1)
    return full, 1, max(full.size, 1)
