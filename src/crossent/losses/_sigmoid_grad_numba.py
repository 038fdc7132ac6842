r"""The sigmoid cross-entropy gradient of float32 and float64 arrays (Numba):
``_sigmoid_grad``'s arithmetic.

:func:`gradient` is the path of NumPy float32 and float64 calls, both the full path's
(``_sigmoid.sigmoid_cross_entropy_grad``) and the small calls' (``_small_sigmoid``), which
therefore give the same bits. :func:`_kernel` screens :data:`BLOCK` entries at a time:
each entry's float64 form of ``_sigmoid_grad``'s notes, rounded once to the dtype, except
those where :math:`N` cancels, which it gathers and forms together afterwards
(:func:`numerators`: the table look-ups entry by entry, then one loop without branches
over the gathered entries, :func:`_entry` inlined, that LLVM vectorises; a per-entry call
with a data-dependent branch does not vectorise, and was 20-35x the common case's cost
where every entry cancels). The error-free helpers are those of ``_numerics`` (which
``_sigmoid_grad`` uses) per entry (kept in this file, so that Numba's on-disk cache,
keyed by this file, cannot hold stale copies of them); inlined helpers take scalars only
(one that takes arrays costs their reference counts per call).
Compiled without fast-math: no product is contracted into an FMA and no sum reassociated,
which the exact sums and products need. Where Numba's target has FMA instructions
(:data:`HAS_FMA`) the exact product's error term is one explicit FMA (``llvm.fma.f64``)
instead of Dekker's splitting, and the double-double steps and the tail's Horner steps
fuse their product and sum (one rounding fewer each, never a larger error): targets at
:math:`\sigma(x)` on every entry, float32: 2.8-2.9x the common case's time an entry,
was 3.2-3.4x (``benchmarks/RESULTS.md``, branch ``perfgrad``).
The constants (:data:`_sigmoid_grad.CLOSE`, the parts of :math:`\ln 2`, ...) are
compiled in and Numba's cache is keyed by this file: after changing them, touch this file.
Importing this module imports Numba.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from .._intrinsics_numba import fma as _fma
from .._intrinsics_numba import numba_target_has
from . import _sigmoid_grad as _constants

__all__ = ["BLOCK", "HAS_FMA", "difference", "gradient", "numerator_dd", "numerators"]

_TABLES = _constants.tables()
_EXP2 = _TABLES.exp2
_C0, _C1, _C2, _C3 = (float(v) for v in _TABLES.ln2)
_EXP_FLOOR, _HUGE = _constants.EXP_FLOOR, _constants.HUGE
_STEPS, _SCALE = _constants.STEPS, _constants.STEPS / math.log(2.0)
_SPLITTER = 134217729.0
_TAIL = tuple(hi for hi, _ in _constants.INVERSE_FACTORIALS[: _constants.DD_TERMS - 1 : -1])
_DD_HI = tuple(hi for hi, _ in _constants.INVERSE_FACTORIALS[_constants.DD_TERMS - 1 :: -1])
_DD_LO = tuple(lo for _, lo in _constants.INVERSE_FACTORIALS[_constants.DD_TERMS - 1 :: -1])
_SHIFT = _STEPS.bit_length() - 1
_POW2_BIAS = 1023
_POW2 = np.ldexp(1.0, np.arange(-_POW2_BIAS, 1))
""":math:`2^k`, :math:`-1023 \\le k \\le 0`, by ``k + 1023`` (``math.ldexp`` is a call, and
does not vectorise)."""
BLOCK = 4096
"""The kernel screens this many entries, then forms their flagged ones together."""


@numba.njit(cache=True, inline="always")
def _two_sum(a: float, b: float) -> tuple[float, float]:
    s = a + b
    v = s - a
    return s, (a - (s - v)) + (b - v)


@numba.njit(cache=True, inline="always")
def _fast_two_sum(a: float, b: float) -> tuple[float, float]:
    s = a + b
    return s, b - (s - a)


#: Whether Numba's target has FMA instructions: :func:`_two_prod`'s error term is then
#: one FMA, else Dekker's splitting (where LLVM's ``llvm.fma`` would be a libm call).
HAS_FMA = numba_target_has("fma")


@numba.njit(cache=True, inline="always")
def _two_prod(a: float, b: float) -> tuple[float, float]:
    # a b = p + e exactly (where e does not underflow): e by one FMA (HAS_FMA), or by
    # Dekker's splitting, fifteen operations (a and b below 2**996: HUGE bounds them)
    p = a * b
    if HAS_FMA:
        return p, _fma(a, b, -p)
    c = _SPLITTER * a
    ah = c - (c - a)
    al = a - ah
    d = _SPLITTER * b
    bh = d - (d - b)
    bl = b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


@numba.njit(cache=True, inline="always")
def _mul_add(a: float, b: float, c: float, fused: bool) -> float:
    # a b + c: one rounding (an FMA) where ``fused`` and HAS_FMA, else two (NumPy's)
    if fused and HAS_FMA:
        return _fma(a, b, c)
    return a * b + c


@numba.njit(cache=True, inline="always")
def _dd_mul_d(ah: float, al: float, b: float, fused: bool) -> tuple[float, float]:
    p, e = _two_prod(ah, b)
    return _fast_two_sum(p, _mul_add(al, b, e, fused))


@numba.njit(cache=True, inline="always")
def _dd_mul_add(
    ah: float, al: float, b: float, ch: float, cl: float, fused: bool
) -> tuple[float, float]:
    p, e = _two_prod(ah, b)
    s, f = _fast_two_sum(ch, p)
    return _fast_two_sum(s, f + (_mul_add(al, b, e, fused) + cl))


@numba.njit(cache=True)
def numerators(
    x: np.ndarray,
    t: np.ndarray,
    pw: np.ndarray,
    count: int,
    eps: float,
    positive: bool,
    exp2: np.ndarray,
    y: np.ndarray,
    n: np.ndarray,
    scale: np.ndarray,
    tab: np.ndarray,
    out: np.ndarray,
) -> None:
    """``_sigmoid_grad.numerator_dd`` of the first ``count`` entries of float64 ``x``,
    ``t`` (raw) and ``pw``, into ``out``: the table look-ups entry by entry into the
    workspaces ``y``, ``n``, ``scale`` (:math:`2^k`) and ``tab`` (3 rows), then the
    arithmetic in one loop without branches (:func:`_arithmetic`, which LLVM
    vectorises)."""
    _look_up(x, count, exp2, _POW2, y, n, scale, tab)
    _arithmetic(x, t, pw, count, eps, positive, y, n, scale, tab, out)


@numba.njit(cache=True)
def _look_up(
    x: np.ndarray,
    count: int,
    exp2: np.ndarray,
    pow2: np.ndarray,
    y: np.ndarray,
    n: np.ndarray,
    scale: np.ndarray,
    tab: np.ndarray,
) -> None:
    """Step 1's :math:`y`, :math:`n = 1024k + j`, :math:`2^k` and :math:`2^{j/1024}`."""
    for q in range(count):
        v = max(-abs(x[q]), _EXP_FLOOR)
        m = math.floor(v * _SCALE + 0.5)
        k = int(m)
        j = k & (_STEPS - 1)
        y[q], n[q], scale[q] = v, m, pow2[((k - j) >> _SHIFT) + _POW2_BIAS]
        tab[0, q], tab[1, q], tab[2, q] = exp2[0, j], exp2[1, j], exp2[2, j]


@numba.njit(cache=True)
def _arithmetic(
    x: np.ndarray,
    t: np.ndarray,
    pw: np.ndarray,
    count: int,
    eps: float,
    weighted: bool,
    y: np.ndarray,
    n: np.ndarray,
    scale: np.ndarray,
    tab: np.ndarray,
    out: np.ndarray,
) -> None:
    """Steps 1-4 of ``_sigmoid_grad.numerator_dd`` after :func:`_look_up` (:func:`_entry`
    per entry, in one loop that LLVM vectorises)."""
    kh, kl = _two_sum(1.0, -eps)
    half = 0.5 * eps
    smooth, positive = eps != 0.0, weighted
    for q in range(count):
        out[q] = _entry(
            x[q],
            t[q],
            pw[q],
            y[q],
            n[q],
            scale[q],
            tab[0, q],
            tab[1, q],
            tab[2, q],
            kh,
            kl,
            half,
            smooth,
            positive,
        )


@numba.njit(cache=True, inline="always")
def _entry(
    x: float,
    raw: float,
    pi: float,
    y: float,
    m: float,
    power: float,
    t0: float,
    t1: float,
    t2: float,
    kh: float,
    kl: float,
    half: float,
    smooth: bool,
    positive: bool,
) -> float:
    """:func:`_arithmetic` of one entry (``smooth``: ``eps != 0``; ``positive``: a
    ``pos_weight``; the same values either way, fewer operations without)."""
    if smooth:  # (_sigmoid_grad._smoothed)
        p1, e1 = _two_prod(kh, raw)
        p2, e2 = _two_prod(kl, raw)
        s, e = _two_sum(p1, half)
        mid, f = _two_sum(e, e1)
        mid, g = _two_sum(mid, p2)
        lo = (f + g) + e2
        th, tm = _fast_two_sum(s, mid)
        a0, a1 = _two_sum(1.0, -th)
        a1, a2 = _two_sum(a1, -tm)
        a0, a1 = _two_sum(a0, a1)
        a2 = a2 - lo
        b0, b1 = _two_prod(pi, th)
        c0, c1 = _two_prod(pi, tm)
        b1, b2 = _two_sum(b1, c0)
        b0, b1 = _fast_two_sum(b0, b1)
        b2 = (b2 + c1) + pi * lo
    else:  # (the same values: t exact)
        a0, a1 = _two_sum(1.0, -raw)
        a0, a1 = _two_sum(a0, a1)
        a2 = b2 = 0.0
        if positive:
            b0, b1 = _two_prod(pi, raw)
        else:
            b0, b1 = raw, 0.0
    v0, v1, v2 = _exp_steps(y, m, t0, t1, t2, True)
    nonneg = x >= 0
    fh = (b0 if nonneg else a0) * power
    fl = (b1 if nonneg else a1) * power
    f2 = (b2 if nonneg else a2) * power
    gh = a0 if nonneg else b0
    gl = a1 if nonneg else b1
    g2 = a2 if nonneg else b2
    p0, p1 = _two_prod(fh, v0)
    q0, q1 = _two_prod(fh, v1)
    r0, r1 = _two_prod(fl, v0)
    small = ((fh * v2 + fl * v1) + f2 * v0) + ((q1 + r1) - g2)
    a, ea = _two_sum(p0, -gh)  # F V - G: its leading terms' and small terms' exact sums
    b, eb = _two_sum(p1, -gl)
    c, ec = _two_sum(q0, r0)
    b, ebc = _two_sum(b, c)
    s, es = _two_sum(a, b)
    total = s + ((((ea + eb) + ec) + ebc) + es + small)
    return -total if nonneg else total


@numba.njit(cache=True, inline="always")
def _exp_steps(
    y: float, m: float, t0: float, t1: float, t2: float, fused: bool
) -> tuple[float, float, float]:
    """Steps 1-3 of ``_sigmoid_grad.numerator_dd`` after the table look-ups
    (``_sigmoid_grad._exp_parts``): :math:`2^{j/1024} e^r` as three floats. ``fused``:
    the Horner and double-double steps fuse their product and sum where :data:`HAS_FMA`
    (:func:`_entry`); else NumPy's two roundings (the same bits as ``_exp_parts``)."""
    s = y - m * _C0
    rh, rl = _two_sum(s, -(m * _C1))
    rh, e = _two_sum(rh, -(m * _C2))
    rh, rl = _fast_two_sum(rh, (rl + e) - m * _C3)
    c = _TAIL[0]
    for k in range(1, len(_TAIL)):
        c = _mul_add(rh, c, _TAIL[k], fused)
    ph, pl = c, 0.0
    for k in range(len(_DD_HI)):
        ph, pl = _dd_mul_add(ph, pl, rh, _DD_HI[k], _DD_LO[k], fused)
    eh, el = _dd_mul_d(ph, pl, rh, fused)
    eh, el = _fast_two_sum(eh, el + rl * (1.0 + eh))
    d0, d1 = _two_prod(t0, eh)
    v0, e0 = _fast_two_sum(t0, d0)
    v1, v2 = _two_sum(e0, t1)
    return v0, v1, v2 + (d1 + (t0 * el + t1 * eh) + t2)


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
    bound: float,
    out: np.ndarray,
    exp2: np.ndarray,
) -> None:
    keep, half = 1.0 - eps, 0.5 * eps
    weighted, positive = w.shape[0] != 0, pw.shape[0] != 0
    smooth = eps != 0.0
    size = x.shape[0]
    block = max(min(BLOCK, size), 1)  # (a step of 0 is an error: an empty input)
    ws = np.empty((12, block))  # (one allocation: small calls)
    xs, ts, ps, us, ns, where = ws[0], ws[1], ws[2], ws[3], ws[4], ws[5]
    work_y, work_n, work_s, tab = ws[6], ws[7], ws[8], ws[9:]
    for start in range(0, size, block):
        stop = min(start + block, size)
        count = 0
        for i in range(start, stop):
            value, raw = np.float64(x[i]), np.float64(t[i])
            target = keep * raw + half
            u = math.exp(-abs(value))
            a = 1.0 - target
            if smooth and -abs(value) < _EXP_FLOOR:  # (as ``gradient``: past the dd's range)
                a = keep * (1.0 - raw) + half
            pi = np.float64(pw[(i // pw_inner) % pw_count]) if positive else 1.0
            p = pi * target if positive else target
            if value >= 0:
                first, second, third = a, p * u, target
            else:
                first, second, third = a * u, p, target * u
            d = first - second
            third = third if smooth else first  # (1 - t_s inherits t_s's rounding)
            if (
                abs(d) < bound * max(first, second, third)
                and pi < _HUGE
                and -abs(value) >= _EXP_FLOOR
            ):
                where[count] = i
                xs[count], ts[count], ps[count], us[count] = value, raw, pi, u
                count += 1
                continue
            weight = np.float64(w[(i // w_inner) % w_count]) if weighted else 1.0
            out[i] = _scaled(d / (1.0 + u), weight, weighted, scale)
        if count == 0:
            continue
        numerators(xs, ts, ps, count, eps, positive, exp2, work_y, work_n, work_s, tab, ns)
        for q in range(count):
            i = int(where[q])
            weight = np.float64(w[(i // w_inner) % w_count]) if weighted else 1.0
            out[i] = _scaled(ns[q] / (1.0 + us[q]), weight, weighted, scale)


@numba.njit(cache=True, inline="always")
def _scaled(d: float, weight: float, weighted: bool, scale: float) -> float:
    """``d`` times the weight (a ``weighted_term``: a weight of 0 gives a 0 of its sign)
    and the scale. (Scalars only: an inlined function that takes arrays costs their
    reference counts per call, 5 ns an entry here.)"""
    if weighted:
        d = d * weight if weight != 0.0 else weight * 0.0
    return d * scale


def gradient(
    x: np.ndarray,
    t: np.ndarray,
    weight: tuple[np.ndarray, int, int],
    pos_weight: tuple[np.ndarray, int, int],
    eps: float,
    scale: float,
    out: np.ndarray,
) -> None:
    """The gradient of flat float32 or float64 ``x`` and raw targets ``t`` (one dtype)
    into ``out`` of that dtype.

    ``weight`` and ``pos_weight``: ``(flat, inner, count)``, entry ``i`` taking
    ``flat[(i // inner) % count]`` (an empty ``flat`` for none); ``eps`` the label
    smoothing, ``scale`` the reduction's float64 factor.
    """
    bound = _constants.CLOSE64 if x.dtype == np.float64 else _constants.CLOSE
    _kernel(x, t, *weight, *pos_weight, eps, scale, bound, out, _EXP2)


@numba.njit(cache=True)
def difference(x: np.ndarray, t: np.ndarray, eps: float, bound: float, out: np.ndarray) -> None:
    r""":func:`gradient` without weights and with scale 1 (:math:`\sigma(x) - t` of the
    smoothed targets) in one call of five arguments: the small focal gradient's second
    term (``_small_sigmoid``), whose call of the thirteen of :func:`_kernel` cost 1 us more
    than the rest of a call of 10 entries; ``bound`` as :func:`gradient` picks it."""
    none = np.empty(0, dtype=x.dtype)
    _kernel(x, t, none, 1, 1, none, 1, 1, eps, 1.0, bound, out, _EXP2)


def numerator_dd(x: float, t: float, pw: float, eps: float) -> Any:
    """``_sigmoid_grad.numerator_dd`` of one entry (for the tests)."""
    xs, ts, ps = (np.array([float(v)]) for v in (x, t, pw))
    out = np.empty(1)
    work = np.empty(1), np.empty(1), np.empty(1), np.empty((3, 1))
    numerators(xs, ts, ps, 1, eps, True, _EXP2, *work, out)
    return out[0]
