r"""The float32 sigmoid cross-entropy gradient per entry (Numba): ``_sigmoid_grad``'s arithmetic.

:func:`gradient` is the path of NumPy float32 calls, both the full path's
(``_sigmoid.sigmoid_cross_entropy_grad``) and the small calls' (``_small_sigmoid``), which
therefore give the same bits. Each entry is the float64 form of ``_sigmoid_grad``'s notes,
re-done in double-double (:func:`_numerator_dd`) where :math:`N` cancels, rounded once to
float32. The double-double helpers are those of ``_numerics`` (which ``_sigmoid_grad``
uses) per entry (kept in this file, so that Numba's on-disk cache, keyed by this file,
cannot hold stale copies of them).
Compiled without fast-math: no product is contracted into an FMA and no sum reassociated,
which the exact sums and products need. The constants (:data:`_sigmoid_grad.CLOSE`, the
parts of :math:`\ln 2`, ...) are compiled in and Numba's cache is keyed by this file:
after changing them, touch this file. Importing this module imports Numba.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from . import _sigmoid_grad as _constants

__all__ = ["gradient", "numerator_dd"]

_C0, _C1, _C2 = _constants.LN2_PARTS
_CLOSE, _EXP_FLOOR, _INV_LN2 = _constants.CLOSE, _constants.EXP_FLOOR, _constants.INV_LN2
_SQUARINGS = _constants.SQUARINGS
_SPLITTER = 134217729.0
_REDUCE = 2.0**-_SQUARINGS
_F_HI = np.array([hi for hi, _ in _constants.INVERSE_FACTORIALS])
_F_LO = np.array([lo for _, lo in _constants.INVERSE_FACTORIALS])


@numba.njit(cache=True, inline="always")
def _two_sum(a: float, b: float) -> tuple[float, float]:
    s = a + b
    v = s - a
    return s, (a - (s - v)) + (b - v)


@numba.njit(cache=True, inline="always")
def _fast_two_sum(a: float, b: float) -> tuple[float, float]:
    s = a + b
    return s, b - (s - a)


@numba.njit(cache=True, inline="always")
def _two_prod(a: float, b: float) -> tuple[float, float]:
    p = a * b
    c = _SPLITTER * a
    ah = c - (c - a)
    al = a - ah
    d = _SPLITTER * b
    bh = d - (d - b)
    bl = b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


@numba.njit(cache=True, inline="always")
def _dd_mul(ah: float, al: float, bh: float, bl: float) -> tuple[float, float]:
    p, e = _two_prod(ah, bh)
    return _fast_two_sum(p, e + (ah * bl + al * bh))


@numba.njit(cache=True, inline="always")
def _dd_mul_d(ah: float, al: float, b: float) -> tuple[float, float]:
    p, e = _two_prod(ah, b)
    return _fast_two_sum(p, e + al * b)


@numba.njit(cache=True, inline="always")
def _dd_add(ah: float, al: float, bh: float, bl: float) -> tuple[float, float]:
    s, e = _two_sum(ah, bh)
    return _fast_two_sum(s, e + (al + bl))


@numba.njit(cache=True)
def _exp_dd(y: float, f_hi: np.ndarray, f_lo: np.ndarray) -> tuple[float, float]:
    """``_sigmoid_grad._exp_dd`` of one ``y <= 0``."""
    y = max(y, _EXP_FLOOR)
    k = math.floor(y * _INV_LN2 + 0.5)
    s, e = _two_sum(y, -(k * _C0))
    rh, rl = _two_sum(s, -(k * _C1))
    rh, rl = _fast_two_sum(rh, rl + (e - k * _C2))
    rho, rho_lo = rh * _REDUCE, rl * _REDUCE
    last = f_hi.shape[0] - 1
    ph, pl = f_hi[last], f_lo[last]
    for j in range(last - 1, -1, -1):
        ph, pl = _dd_mul_d(ph, pl, rho)
        ph, pl = _dd_add(ph, pl, f_hi[j], f_lo[j])
    eh, el = _dd_mul_d(ph, pl, rho)
    eh, el = _dd_add(eh, el, rho_lo * (1.0 + eh), 0.0)
    for _ in range(_SQUARINGS):
        sh, sl = _dd_mul(eh, el, eh, el)
        eh, el = _dd_add(2.0 * eh, 2.0 * el, sh, sl)
    s, e = _two_sum(1.0, eh)
    uh, ul = _fast_two_sum(s, e + el)
    return math.ldexp(uh, int(k)), math.ldexp(ul, int(k))


@numba.njit(cache=True)
def _numerator_dd(
    x: float, t: float, pw: float, eps: float, f_hi: np.ndarray, f_lo: np.ndarray
) -> float:
    """``_sigmoid_grad.numerator_dd`` of one entry."""
    kh, kl = _two_sum(1.0, -eps)
    th, tl = _two_prod(kh, t)
    s, e = _two_sum(th, 0.5 * eps)
    th, tl = _fast_two_sum(s, e + (tl + kl * t))
    s, e = _two_sum(1.0, -th)
    ah, al = _two_sum(s, e - tl)
    p, e = _two_prod(pw, th)
    ph, pl = _fast_two_sum(p, e + pw * tl)
    uh, ul = _exp_dd(-abs(x), f_hi, f_lo)
    if x >= 0:
        fh, fl = ah, al
        gh, gl = _dd_mul(ph, pl, uh, ul)
    else:
        fh, fl = _dd_mul(ah, al, uh, ul)
        gh, gl = ph, pl
    s, e = _two_sum(fh, -gh)
    return s + (e + (fl - gl))


@numba.njit(cache=True)
def _kernel(
    x: np.ndarray,
    t: np.ndarray,
    w: np.ndarray,
    w_inner: int,
    w_count: int,
    pw: np.ndarray,
    pw_inner: int,
    pw_count: int,
    eps: float,
    scale: float,
    out: np.ndarray,
    f_hi: np.ndarray,
    f_lo: np.ndarray,
) -> None:
    keep, half = 1.0 - eps, 0.5 * eps
    weighted, positive = w.shape[0] != 0, pw.shape[0] != 0
    for i in range(x.shape[0]):
        value, raw = np.float64(x[i]), np.float64(t[i])
        target = keep * raw + half
        u = math.exp(-abs(value))
        a = 1.0 - target
        pi = np.float64(pw[(i // pw_inner) % pw_count]) if positive else 1.0
        p = pi * target if positive else target
        if value >= 0:
            first, second = a, p * u
        else:
            first, second = a * u, p
        n = first - second
        if abs(n) < _CLOSE * max(first, second):
            n = _numerator_dd(value, raw, pi, eps, f_hi, f_lo)
        d = n / (1.0 + u)
        if weighted:  # (a weighted_term: a weight of 0 gives a 0 of its sign)
            weight = np.float64(w[(i // w_inner) % w_count])
            d = d * weight if weight != 0.0 else weight * 0.0
        out[i] = d * scale


def gradient(
    x: np.ndarray,
    t: np.ndarray,
    weight: tuple[np.ndarray, int, int],
    pos_weight: tuple[np.ndarray, int, int],
    eps: float,
    scale: float,
    out: np.ndarray,
) -> None:
    """The gradient of flat float32 ``x`` and raw targets ``t`` into float32 ``out``.

    ``weight`` and ``pos_weight``: ``(flat, inner, count)``, entry ``i`` taking
    ``flat[(i // inner) % count]`` (an empty ``flat`` for none); ``eps`` the label
    smoothing, ``scale`` the reduction's float64 factor.
    """
    _kernel(x, t, *weight, *pos_weight, eps, scale, out, _F_HI, _F_LO)


def numerator_dd(x: float, t: float, pw: float, eps: float) -> Any:
    """:func:`_numerator_dd` of one entry (for the tests)."""
    return _numerator_dd(x, t, pw, eps, _F_HI, _F_LO)
