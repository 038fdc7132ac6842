r"""The float64 sigmoid focal gradient where its two terms cancel, per entry (Numba):
``_focal_root``'s screen and double-double refinement in one pass.

:func:`refine` reads each entry's float64 bracket :math:`f + (\sigma - t)` and its term
:math:`\sigma - t` once (two loads and a compare, and no branch, where nothing cancels,
the common case: 1.3 ns an entry, about 2 % of the float64 formula's cost), gathers the
entries of each block of :data:`BLOCK` where they cancel (``_focal_root.CANCELLED``),
and forms :math:`g` for them again in double-double arithmetic:
``_focal_root.refined``'s operations in its order, so the same bits, in loops without
branches that LLVM vectorises (:func:`_sigmoids`, :func:`_brackets`; the C library's
``log1p`` and ``pow`` and the table look-ups in loops of their own): 60-80 ns an entry
refined, against 600-750 ns for the NumPy arrays' form and about 200 ns for one loop
over the entries (a chain of dependent operations that one entry at a time leaves the
core waiting on; ``benchmarks/RESULTS.md``). The error-free sums and products are
``_sigmoid_grad_numba``'s (``_numerics``' per entry: the exact product's error term is
unique, so its FMA form and Dekker's splitting agree where nothing underflows), the
exponential its table steps unfused (``_exp_steps``: ``_sigmoid_grad.exp_parts``' bits),
and ``log1p``, ``pow`` and, below ``EXP_FLOOR``, ``exp`` the C library's, as
``_focal_root`` takes them (``math``: NumPy's SIMD ufuncs differ from it by an ulp).
Division by zero gives NumPy's inf and NaN (``error_model="numpy"``), as the NumPy form.
One signature (float64); its first call compiles for about 5 s of CPU, then loads from
Numba's cache.

Compiled without fast-math. Numba's cache is keyed by this file only: after editing
``_sigmoid_grad_numba``'s helpers, touch this file (``_intrinsics_numba``'s notes).
Importing this module imports Numba.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._focal_root import CANCELLED as _CANCELLED
from ._sigmoid_grad import EXP_FLOOR as _EXP_FLOOR
from ._sigmoid_grad_numba import (
    _EXP2,
    _POW2,
    _POW2_BIAS,
    _SCALE,
    _SHIFT,
    _STEPS,
    _exp_steps,
    _fast_two_sum,
    _two_prod,
    _two_sum,
)

__all__ = ["BLOCK", "refine", "refined"]

BLOCK = 4096
"""The kernel screens this many entries, then forms their cancelled ones together."""

# The workspace's rows: the gathered x and t; y (-|x|, then -h) and the far entries'
# float64 exp; the look-ups (m, 2^k, three table parts); s, sigma(x), sigma(-x), h,
# the bracket and 1 - p_t (double-doubles two rows each).
_X, _T, _Y, _FAR, _E = 0, 1, 2, 3, 4
_S, _P, _N, _H, _B, _Q = 9, 11, 13, 15, 16, 18
_ROWS = 20


@numba.njit(cache=True, error_model="numpy")
def _add(ah: float, al: float, bh: float, bl: float) -> tuple[float, float]:
    s, e = _two_sum(ah, bh)
    return _fast_two_sum(s, e + (al + bl))


@numba.njit(cache=True, error_model="numpy")
def _mul(ah: float, al: float, bh: float, bl: float) -> tuple[float, float]:
    p, e = _two_prod(ah, bh)
    return _fast_two_sum(p, e + (ah * bl + al * bh))


@numba.njit(cache=True, error_model="numpy")
def _mul_d(ah: float, al: float, b: float) -> tuple[float, float]:
    p, e = _two_prod(ah, b)
    return _fast_two_sum(p, e + al * b)


@numba.njit(cache=True, error_model="numpy")
def _reciprocal(bh: float, bl: float) -> tuple[float, float]:
    q = 1.0 / bh
    p, e = _mul_d(bh, bl, q)
    r, f = _two_sum(1.0, -p)
    return _fast_two_sum(q, (r + (f - e)) * q)


@numba.njit(cache=True, error_model="numpy")
def _look_up(
    y: np.ndarray, count: int, exp2: np.ndarray, pow2: np.ndarray, ws: np.ndarray, row: int
) -> None:
    """``exp_parts``' table look-ups of ``y[:count]`` into rows ``row`` to ``row + 4``
    of ``ws``: :math:`m = 1024k + j`, :math:`2^k` and :math:`2^{j/1024}`'s three parts."""
    for q in range(count):
        m = math.floor(y[q] * _SCALE + 0.5)
        k = int(m)
        j = k & (_STEPS - 1)
        ws[row, q], ws[row + 1, q] = m, pow2[((k - j) >> _SHIFT) + _POW2_BIAS]
        ws[row + 2, q], ws[row + 3, q], ws[row + 4, q] = exp2[0, j], exp2[1, j], exp2[2, j]


@numba.njit(cache=True, error_model="numpy")
def _sigmoids(count: int, ws: np.ndarray) -> None:
    r""":math:`s = e^{-|x|}`, :math:`\sigma(x)` and :math:`\sigma(-x)` as double-doubles
    (one loop without branches, which LLVM vectorises)."""
    for q in range(count):
        x, y, far = ws[_X, q], ws[_Y, q], ws[_FAR, q]
        v0, v1, v2 = _exp_steps(y, ws[_E, q], ws[_E + 2, q], ws[_E + 3, q], ws[_E + 4, q], False)
        sh, sl = _fast_two_sum(v0, v1 + v2)
        power = ws[_E + 1, q]
        sh, sl = sh * power, sl * power
        sh, sl = (far, 0.0) if far >= 0.0 else (sh, sl)
        dh, dl = _add(1.0, 0.0, sh, sl)
        bh, bl = _reciprocal(dh, dl)  # sigma(|x|), then sigma(-|x|) = s sigma(|x|)
        th, tl = _mul(sh, sl, bh, bl)
        above = x >= 0
        ws[_S, q], ws[_S + 1, q] = sh, sl
        ws[_P, q], ws[_P + 1, q] = (bh, bl) if above else (th, tl)
        ws[_N, q], ws[_N + 1, q] = (th, tl) if above else (bh, bl)


@numba.njit(cache=True, error_model="numpy")
def _brackets(count: int, gamma: float, ws: np.ndarray) -> None:
    r"""The bracket :math:`f + (\sigma - t)` and :math:`1 - p_t` as double-doubles, from
    :func:`_sigmoids`' values, ``log1p`` of :math:`s` and its table look-ups (one loop
    without branches)."""
    for q in range(count):
        x, t, h = ws[_X, q], ws[_T, q], ws[_H, q]
        sh, sl = ws[_S, q], ws[_S + 1, q]
        gh, gl, nh, nl = ws[_P, q], ws[_P + 1, q], ws[_N, q], ws[_N + 1, q]
        v0, v1, v2 = _exp_steps(-h, ws[_E, q], ws[_E + 2, q], ws[_E + 3, q], ws[_E + 4, q], False)
        power = ws[_E + 1, q]
        v0, v1, v2 = v0 * power, v1 * power, v2 * power  # (_focal_root._log1p_exp)
        p, e = _two_prod(sh, v0)
        rho = ((p + (v0 - 1.0)) + v1) + ((e + v2) + (sh * (v1 + v2) + sl * v0))
        rh, rl = _fast_two_sum(h, rho - 0.5 * rho * rho)
        oh, ol = _two_sum(1.0, -t)
        above = x >= 0
        wh, wl = (oh, ol) if above else (t, 0.0)
        ph, pl = _mul_d(wh, wl, abs(x))
        eh, el = _add(rh, rl, ph, pl)  # the cross-entropy
        ah, al = _mul_d(nh, nl, t)
        ch, cl = _mul(oh, ol, gh, gl)
        qh, ql = _add(ah, al, ch, cl)  # 1 - p_t
        fh, fl = _two_sum(1.0, -2.0 * t)
        fh, fl = _mul_d(fh, fl, gamma)
        ah, al = _mul(gh, gl, nh, nl)
        ih, il = _reciprocal(qh, ql)
        ah, al = _mul(ah, al, ih, il)
        ah, al = _mul(fh, fl, ah, al)
        ah, al = _mul(ah, al, eh, el)  # the focal term
        ch, cl = _add(gh, gl, -t, 0.0)
        ws[_B, q], ws[_B + 1, q] = _add(ah, al, ch, cl)
        ws[_Q, q], ws[_Q + 1, q] = qh, ql


@numba.njit(cache=True, error_model="numpy")
def _refine(
    grad: np.ndarray,
    total: np.ndarray,
    plain: np.ndarray,
    x: np.ndarray,
    t: np.ndarray,
    gamma: float,
    exp2: np.ndarray,
    pow2: np.ndarray,
) -> int:
    size = grad.shape[0]
    block = max(min(BLOCK, size), 1)
    ws = np.empty((_ROWS, block))
    where = np.empty(block, dtype=np.intp)
    refined = 0
    for start in range(0, size, block):
        count = 0
        for i in range(start, min(start + block, size)):
            where[count] = i  # (kept where it cancels: no branch to mispredict)
            count += abs(total[i]) < _CANCELLED * abs(plain[i])
        if count == 0:
            continue
        refined += count
        for q in range(count):  # the gathered entries, and far ones' float64 exp
            i = where[q]
            magnitude = abs(x[i])
            far = -magnitude < _EXP_FLOOR
            ws[_X, q], ws[_T, q] = x[i], t[i]
            ws[_Y, q] = 0.0 if far else -magnitude
            ws[_FAR, q] = math.exp(-magnitude) if far else -1.0  # (-1: not far)
        _look_up(ws[_Y], count, exp2, pow2, ws, _E)
        _sigmoids(count, ws)
        for q in range(count):
            ws[_H, q] = math.log1p(ws[_S, q])
            ws[_Y, q] = -ws[_H, q]
        _look_up(ws[_Y], count, exp2, pow2, ws, _E)
        _brackets(count, gamma, ws)
        for q in range(count):
            qh, ql, bh, bl = ws[_Q, q], ws[_Q + 1, q], ws[_B, q], ws[_B + 1, q]
            modulation = math.pow(qh, gamma)
            low = modulation * (gamma * (ql / qh))  # (1-p_t)^gamma's first-order low part
            hi, lo = _mul_d(bh, bl, modulation)
            grad[where[q]] = hi + (lo + bh * low)
    return refined


def refine(
    grad: np.ndarray,
    total: np.ndarray,
    plain: np.ndarray,
    x: np.ndarray,
    t: np.ndarray,
    gamma: float,
) -> int:
    """Flat float64 ``grad`` (written in place), ``total``, ``plain``, ``x`` and ``t``
    of one length: the entries where ``total`` cancels against ``plain`` formed again
    (``_focal_root.refine``'s screen); the number of them."""
    return int(_refine(grad, total, plain, x, t, float(gamma), _EXP2, _POW2))


def refined(x: np.ndarray, t: np.ndarray, gamma: float) -> np.ndarray:
    """``_focal_root.refined`` of flat float64 ``x`` and ``t`` (every entry; the same
    kernel as :func:`refine`, so no second compilation)."""
    out = np.empty_like(x)
    refine(out, np.zeros_like(x), np.ones_like(x), x, t, gamma)
    return out
