r"""Float32 gradients of the sigmoid cross-entropy, within an ulp where :math:`\sigma(x)` meets
:math:`t` (issue 13 follow-up: the soft-target cancellation).

The gradient of :math:`w\,[\pi\,t\,\operatorname{sp}(-x) + (1-t)\operatorname{sp}(x)]` is
:math:`w\,[(1-t)\,\sigma(x) - \pi\,t\,\sigma(-x)]`. Formed in float32 from float32
:math:`\sigma(\pm x)`, the difference cancels where the target is within a few ulps of
:math:`\sigma(x)` (with ``pos_weight``, of :math:`1/(1 + \pi e^{-x}\ldots)`): each term is good
to an ulp of itself, the difference is a few ulps of it, so the entry was hundreds to
millions of float32 ulps off (Torch's own float32 gradient is, for the same reason).

Here, with :math:`u = e^{-|x|} \in [0, 1]` (no overflow for any :math:`x`) and the identity
:math:`(1 + u)\,\sigma(\pm|x|) \in \{1, u\}`:

.. math:: \frac{\partial\ell}{\partial x} = w\,s\,\frac{N}{1 + u},\qquad
          N = \begin{cases} (1 - t) - \pi t\,u & x \ge 0\\ (1 - t)\,u - \pi t & x < 0
          \end{cases}

(:math:`s` the reduction's and unit's scale, :math:`t` the smoothed target
:math:`(1-\varepsilon)t + \varepsilon/2`). Only :math:`N` can cancel; :math:`1 + u \in [1, 2]`
and the products cannot. Every entry is computed in float64 from the float32 inputs (exact
in float64) and rounded once to float32:

* :math:`N` in float64 with :math:`u` from ``exp``: its error is a few float64 ulps of
  :math:`M = \max` of its two terms, at most :math:`2^{-49} M`;
* where :math:`|N| < 2^{-20} M` (:data:`CLOSE`: then that error could reach
  :math:`2^{-29}|N|`, a thirty-second of a float32 ulp), :math:`N` again in double-double
  arithmetic (:func:`numerator_dd`: :math:`u` to about :math:`2^{-96}` relative,
  Cody-Waite reduction by three parts of :math:`\ln 2`, a degree-9 Taylor series of
  :math:`\operatorname{expm1}` at :math:`r/2^8` and eight squarings in the
  :math:`\operatorname{expm1}` form; Dekker's exact products, Knuth's exact sums), then
  rounded to float64. That is exact to a thirty-second of a float32 ulp wherever
  :math:`|N| \ge 2^{-67} M`, i.e. for every input but ones closer than that to a zero of
  :math:`N` (which only :math:`x = 0` has exactly);
* :math:`N/(1+u)`, times :math:`w` and :math:`s` (:math:`1/\sum w` in float64, not rounded
  to float32 first; over :math:`\ln b`), each a float64 rounding: the float32 result is
  within :math:`0.5 + 2^{-5}` ulp of the exact gradient of the float32 inputs.

Soft targets whose :math:`\sigma(x)` lands that close are rare (about one entry in a
million of uniform targets is re-done); a target set to the float32 :math:`\sigma(x)`
(self-distillation, calibrated labels) re-does every entry, at a few times the cost.

This module holds the array-API form (NumPy without Numba; PyTorch, array-api-strict and
other libraries with float64, in their own namespace); ``_sigmoid_grad_numba`` holds the
same arithmetic per entry, the path of NumPy float32 calls, large (the full path) and small
(``_small_sigmoid``), so that those two stay the same bits.
"""

from __future__ import annotations

import math
from fractions import Fraction
from types import ModuleType
from typing import Any

import numpy as np

from .._checks import ValuelessArrayError, truth_of
from .._numerics import _quick_two_sum, _two_product, _two_sum
from .._xp import Array, astype
from ._reduction import weighted_term

__all__ = [
    "CLOSE",
    "EXP_FLOOR",
    "INVERSE_FACTORIALS",
    "INV_LN2",
    "LN2_PARTS",
    "SQUARINGS",
    "gradient",
    "kernel_gradient",
    "numerator_dd",
]

CLOSE = 2.0**-20
"""Entries with :math:`|N| <` ``CLOSE`` :math:`\\cdot M` are formed again in double-double."""

LN2_PARTS = (
    float.fromhex("0x1.62e42fefa4000p-1"),  # 39 bits: k * part exact for |k| < 2**13
    float.fromhex("-0x1.8432a1b0e2000p-43"),  # 40 bits
    float.fromhex("-0x1.8cff81a12a17ep-85"),
)
""":math:`\\ln 2` as three doubles (their sum is :math:`\\ln 2` to about :math:`2^{-138}`)."""

INV_LN2 = 1.4426950408889634
"""``1 / ln 2`` in float64 (only to choose :math:`k`)."""

EXP_FLOOR = -700.0
""":math:`-|x|` is taken no lower (:math:`e^{-700}` is a normal float64; an entry there with
a cancelling :math:`N` needs :math:`\\pi t/(1-t)` below float32's range)."""

SQUARINGS = 8
"""The Taylor series runs at :math:`r / 2^8`, then is squared back this many times."""


def _inverse_factorial(n: int) -> tuple[float, float]:
    """:math:`1/n!` as a double-double ``(hi, lo)``."""
    exact = Fraction(1, math.factorial(n))
    hi = float(exact)
    return hi, float(exact - Fraction(hi))


INVERSE_FACTORIALS = tuple(_inverse_factorial(n) for n in range(1, 10))
""":math:`1/1!, \\ldots, 1/9!` as double-doubles (:math:`(2^{-8}\\ln 2/2)^{10}/10! < 2^{-106}`)."""

# Double-double arithmetic with the operators only (NumPy arrays, other libraries' arrays
# and Python floats alike): ``_numerics``' error-free sums and products (Knuth's TwoSum,
# the quick sum for |a| >= |b|, Dekker's product for |a|, |b| < 2**996).
# ``_sigmoid_grad_numba`` has the same functions per entry.


def _dd_mul(ah: Any, al: Any, bh: Any, bl: Any) -> tuple[Any, Any]:
    """The product of two double-doubles."""
    p, e = _two_product(ah, bh)
    return _quick_two_sum(p, e + (ah * bl + al * bh))


def _dd_mul_d(ah: Any, al: Any, b: Any) -> tuple[Any, Any]:
    """A double-double times a double."""
    p, e = _two_product(ah, b)
    return _quick_two_sum(p, e + al * b)


def _dd_add(ah: Any, al: Any, bh: Any, bl: Any) -> tuple[Any, Any]:
    """The sum of two double-doubles that do not cancel."""
    s, e = _two_sum(ah, bh)
    return _quick_two_sum(s, e + (al + bl))


def _exp_dd(y: Array, *, xp: ModuleType) -> tuple[Array, Array]:
    """:math:`e^y` for float64 ``y <= 0`` as a double-double (see the module notes)."""
    y = xp.clip(y, min=EXP_FLOOR)
    k = xp.floor(y * INV_LN2 + 0.5)
    c0, c1, c2 = LN2_PARTS
    s, e = _two_sum(y, -(k * c0))  # (exact products: k has at most 11 bits)
    rh, rl = _two_sum(s, -(k * c1))
    rh, rl = _quick_two_sum(rh, rl + (e - k * c2))
    rho, rho_lo = rh * 2.0**-SQUARINGS, rl * 2.0**-SQUARINGS
    ph, pl = INVERSE_FACTORIALS[-1]
    ph, pl = ph + 0 * rho, pl + 0 * rho  # (arrays of rho's shape)
    for fh, fl in INVERSE_FACTORIALS[-2::-1]:
        ph, pl = _dd_mul_d(ph, pl, rho)
        ph, pl = _dd_add(ph, pl, fh, fl)
    eh, el = _dd_mul_d(ph, pl, rho)  # expm1(rho)
    eh, el = _dd_add(eh, el, rho_lo * (1.0 + eh), 0.0)  # expm1(rho + rho_lo)
    for _ in range(SQUARINGS):  # expm1(2 r) = 2 expm1(r) + expm1(r)^2
        sh, sl = _dd_mul(eh, el, eh, el)
        eh, el = _dd_add(2.0 * eh, 2.0 * el, sh, sl)
    s, e = _two_sum(1.0, eh)
    uh, ul = _quick_two_sum(s, e + el)
    if type(k) is np.ndarray:
        return np.ldexp(uh, k.astype(np.int32)), np.ldexp(ul, k.astype(np.int32))
    power = _power_of_two(k, xp=xp)
    return uh * power, ul * power


def _power_of_two(k: Array, *, xp: ModuleType) -> Array:
    r""":math:`2^k` for integer-valued float64 ``k`` in :math:`[-1023, 0]`, exactly: a
    product of :math:`2^{-2^j}` over the bits of :math:`-k` (XLA's ``pow`` is
    :math:`e^{k \ln 2}`, not exact)."""
    m = -k
    one = xp.ones_like(k)
    power = one
    for j in range(10):
        bit = xp.remainder(xp.floor(m * 2.0**-j), 2.0)
        power = power * xp.where(bit == 1.0, xp.full_like(k, 2.0 ** -(2**j)), one)
    return power


def numerator_dd(x: Array, t: Array, pos_weight: Any, eps: float, *, xp: ModuleType) -> Array:
    r""":math:`N` of the module notes in double-double, rounded to float64.

    ``x`` and ``t`` are float64 arrays of float32 values (``t`` before smoothing),
    ``pos_weight`` one broadcast to them (or 1.0); ``eps`` the label smoothing.
    """
    kh, kl = _two_sum(1.0, -eps)  # 1 - eps, exactly
    th, tl = _two_product(kh, t)
    s, e = _two_sum(th, 0.5 * eps)
    th, tl = _quick_two_sum(s, e + (tl + kl * t))  # the smoothed target
    s, e = _two_sum(1.0, -th)
    ah, al = _two_sum(s, e - tl)  # 1 - t
    p, e = _two_product(pos_weight, th)
    ph, pl = _quick_two_sum(p, e + pos_weight * tl)  # pi t
    uh, ul = _exp_dd(-xp.abs(x), xp=xp)
    nonneg = x >= 0
    puh, pul = _dd_mul(ph, pl, uh, ul)
    auh, aul = _dd_mul(ah, al, uh, ul)
    fh, fl = xp.where(nonneg, ah, auh), xp.where(nonneg, al, aul)
    gh, gl = xp.where(nonneg, puh, ph), xp.where(nonneg, pul, pl)
    s, e = _two_sum(fh, -gh)
    return s + (e + (fl - gl))


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
    pw = 1.0 if pos_weight is None else astype(pos_weight, wide, xp=xp)
    p = target if pos_weight is None else pw * target
    nonneg = x64 >= 0
    first = xp.where(nonneg, a, a * u)
    second = xp.where(nonneg, p * u, p)
    n = first - second
    close = xp.abs(n) < CLOSE * xp.maximum(first, second)
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
        d = weighted_term(astype(weight, wide, xp=xp), d, xp=xp)
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
    """:func:`gradient` of float32 NumPy arrays by ``_sigmoid_grad_numba`` (Numba
    installed): the full path's, and ``crossent.torch``'s for CPU tensors."""
    from . import _sigmoid_grad_numba

    flat_x = np.ascontiguousarray(x).reshape(-1)
    flat_t = np.ascontiguousarray(t, dtype=np.float32).reshape(-1)
    out = np.empty(flat_x.shape, dtype=np.float32)
    _sigmoid_grad_numba.gradient(
        flat_x,
        flat_t,
        _flat_pattern(weight, x.shape),
        _flat_pattern(pos_weight, x.shape),
        eps,
        scale,
        out,
    )
    return out.reshape(x.shape)


def _flat_pattern(w: np.ndarray | None, shape: tuple[int, ...]) -> tuple[np.ndarray, int, int]:
    """A weight as ``_sigmoid_grad_numba.gradient`` takes it: ``(flat, inner, count)``
    (``_small_sigmoid``'s pattern of a float32 weight, or a float32 broadcast copy),
    empty for none."""
    from . import _small_sigmoid

    if w is None:
        return np.empty(0, dtype=np.float32), 1, 1
    found = _small_sigmoid.pattern(w, shape, np.dtype(np.float32).char)
    if found is not None:
        return found
    full = np.ascontiguousarray(np.broadcast_to(w, shape), dtype=np.float32).reshape(-1)
    return full, 1, max(full.size, 1)
