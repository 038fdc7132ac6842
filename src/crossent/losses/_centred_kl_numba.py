# mypy: allow-untyped-defs
# (Numba kernels: their arguments are typed by Numba at the call, not by annotations.)
r"""The KL of a row whose two sides nearly agree, over the centred log-ratio (issue 13).

Above ``_near_rows.KL_FLOOR`` the common path's :math:`D = W/S_t + \ell_s - \ell_t`
adds terms of the size of :math:`\log C` to a KL of :math:`10^{-6}` to
:math:`10^{-3}`: some :math:`10^{6}` ulps off (branch distillnear). Here, with
:math:`p` the first side (the teacher for ``'forward'``), :math:`x` and :math:`y` the
first and second sides' scores, and any constant :math:`K`,

.. math::

    u_c = \frac{(y_c - x_c) - K}{T},\qquad
    D(p\,\|\,q) = \log\mathrm E_p[e^u] - \mathrm E_p[u] = \Phi + \psi(M + \Phi),

    M = \mathrm E_p[u],\qquad \Phi = \mathrm E_p[\varphi(u)],\quad
    \varphi(u) = e^u - 1 - u \ge 0,\qquad \psi(y) = \log(1 + y) - y,

(``_near_rows``' formula): :math:`\Phi` a sum of nonnegative terms, :math:`\psi` of
the order of :math:`M^2`, so where :math:`K` centres :math:`u` (:math:`M` near 0)
nothing cancels. :math:`K = (m_y - m_x) + T c` with :math:`c` an estimate of
:math:`\mathrm E_p[(y - m_y)/T - (x - m_x)/T]`: the common path's own (its
:math:`-W/S_t`, within some :math:`\varepsilon\log C` of it, which is all a shift
needs), or a first pass's. :math:`y_c - x_c` is formed before the shift and the
division (exact where the sides agree to a factor of 2, Sterbenz), so :math:`u_c` is
within a few ulps of itself (the difference of the rounded :math:`\sigma_c` and
:math:`\tau_c` would be :math:`\varepsilon|\sigma_c|` off: 1000 ulps of a
:math:`u_c` of :math:`10^{-2}` beside :math:`|\sigma_c| = 10`). :math:`\varphi(u)
= u^2 h(u)` by ``_near_rows._H``'s series where :math:`|u| < 1/2` (vectorised), else
:math:`e^u - 1 - u` by ``exp_of_pair`` (a second loop over the block, only where a
class needs it); :math:`\psi` by ``_PSI``'s series where :math:`|M + \Phi| < 2^{-7}`.
The weights :math:`e^{(x_c - m_x)/T}` are ``exp_of_pair``'s of the quotient as a pair,
:math:`x_c - m_x` exactly by TwoSum (its rounding was :math:`\varepsilon|\tau_c|` of
a weight: 10 ulps of the KL of ``[0, log 3e-5, -30]`` against ``[0, log 1e-5,
-30]``). Where a weight is 0 (:math:`x_c` below the exponential's floor, or
``-inf``), :math:`p_c e^{u_c}` is the second side's :math:`e^{\sigma_c - c}`
(:math:`\sigma = (y - m_y)/T`), its mass on a class the first leaves out (a teacher
class of :math:`e^{-741}` beside a student's :math:`10^{-5}`: the KL itself); where
that weight is subnormal (:math:`e^{-708}` to :math:`e^{-745}`, below
``exp_of_pair``'s reach: ``np.exp``), its :math:`p_c u_c` and :math:`-p_c(1 + u_c)`
too (of any size beside a student logit of :math:`-10^{300}`). Each
block's terms are summed vectorised and the blocks by TwoSum, as ``_distill_numba``'s
sums.

``_distill_numba`` and ``_near_rows_numba`` (cached) compile these functions in: after
changing this file, touch them.

Only rows of a finite common-path KL below ``_near_rows.NEAR_CEILING`` come here (one pass
more over such a row, none over the others): there the common path's error,
some :math:`2\varepsilon\log C` absolute, is more than :math:`2^{10}\varepsilon\log C`
of the KL. Rows below ``KL_FLOOR`` keep ``_near_rows``' forms (which reach
:math:`T = 10^{306}`).
"""

from __future__ import annotations

import numba
import numpy as np

from .._intrinsics_numba import float64_to_bits
from ._cpu_kernels_numba import exp_of_pair, two_sum
from ._near_rows import _H, _PSI, _SERIES_X, _SERIES_Y

__all__ = ["block_sums", "centred_kl", "centred_kl_row", "centred_kl_rows", "power_of_two"]

_BLOCK = 512
_FLOOR = -708.0  # below: e^x is 0 here (as _distill_numba's)
_SUBNORMAL = -746.0  # below: e^x is 0 in float64 (to the floor, subnormal: np.exp)
_TOP = 700.0  # u above: such a row is no near row (its KL is large)
_LOOP = {"contract"}
_SUMS = {"contract", "reassoc", "nsz"}
_H0, _H_REST = _H[0], _H[1:]
_PSI0, _PSI_REST = _PSI[0], _PSI[1:]


@numba.njit(inline="always")
def _series(x, first, rest):
    # sum_k a_k x^k by Horner's rule, the coefficients from the highest power down
    total = first
    for a in rest:
        total = total * x + a
    return total


@numba.njit(inline="always")
def _pair(d, inv_t, temperature, exact):
    # d/T as q + lo (_distill_numba._quotient: the remainder by an FMA; lo = 0 where
    # 1/T is exact)
    q = d * inv_t
    if exact:
        return q, 0.0
    return q, (d - q * temperature) * inv_t


@numba.njit(inline="always")
def _difference(a, b):
    # a - b as the pair d + lo exactly (TwoSum; inlined, so that the blocks' loop
    # vectorises: _cpu_kernels_numba.two_sum is a call)
    d = a - b
    back = d - a
    return d, (a - (d - back)) - (b + back)


@numba.njit(inline="always")
def _gap(x, m, inv_t, temperature, exact):
    # (x - m)/T as a pair q + lo: x - m exactly by TwoSum (its low part into lo)
    gap, gap_lo = _difference(x, m)
    q, lo = _pair(gap, inv_t, temperature, exact)
    return q, lo + gap_lo * inv_t


@numba.njit(fastmath=_LOOP, inline="never")
def _block_terms(xb, yb, maxima, shift, inv_t, temperature, exact, ew, eu, ef):
    # the block's p-weights w = e^((x - m_x)/T), w u and w phi(u) by the series (the
    # common case, vectorised), then the entries the series does not take (_rare_terms)
    m_x, m_y = maxima
    k = (m_y - m_x) + temperature * shift
    rare = 0
    for j in range(xb.shape[0]):
        x = np.float64(xb[j])  # (float32 rows: y - x in float64, exact)
        q, lo = _gap(x, m_x, inv_t, temperature, exact)
        w = exp_of_pair(q, lo, 0.0) if q > _FLOOR else 0.0
        uq, ulo = _pair((np.float64(yb[j]) - x) - k, inv_t, temperature, exact)
        u = uq + ulo
        ew[j] = w
        eu[j] = w * u if w > 0.0 else 0.0
        ef[j] = w * ((u * u) * _series(u, _H0, _H_REST)) if w > 0.0 else 0.0
        rare += not (w > 0.0 and abs(u) < _SERIES_X)
    if rare:
        _rare_terms(xb, yb, maxima, shift, k, inv_t, temperature, exact, ew, eu, ef)


@numba.njit(inline="never")
def _rare_terms(xb, yb, maxima, shift, k, inv_t, temperature, exact, ew, eu, ef):
    # w phi(u) = w (e^u - 1 - u) where |u| >= 1/2; where w is 0 (x below the floor, or
    # -inf), the second side's e^(sigma - shift) in its place (sigma = (y - m_y)/T:
    # p e^u there, the mass of q on a class p leaves out), and where the weight is
    # subnormal (the floor's e^-708 down to e^-745: exp_of_pair does not reach it) its
    # w, w u and -w (1 + u) too (issue 13, branch distillnear12: a teacher class of
    # e^-710 against a student's -1e300, w |u| = 2.2e-9, was left out of a KL of 9e-6)
    m_x, m_y = maxima
    for j in range(xb.shape[0]):
        x, y, w = np.float64(xb[j]), np.float64(yb[j]), ew[j]
        uq, ulo = _pair((y - x) - k, inv_t, temperature, exact)
        u = uq + ulo
        if w > 0.0:
            if not abs(u) < _SERIES_X:
                e = exp_of_pair(min(u, _TOP), 0.0, 0.0) if u > _FLOOR else 0.0
                ef[j] = w * ((e - 1.0) - u)
            continue
        sq, slo = _gap(y, m_y, inv_t, temperature, exact)
        a, a_lo = _difference(sq, shift)  # (sigma - shift as a + a_lo + slo)
        ef[j] = exp_of_pair(a, slo + a_lo, 0.0) if a > _FLOOR else 0.0
        q, lo = _gap(x, m_x, inv_t, temperature, exact)
        tiny = np.exp(q + lo) if q > _SUBNORMAL else 0.0  # (0 for -inf: q is -inf or NaN)
        if tiny > 0.0 and np.isfinite(u):
            ew[j] = tiny
            eu[j] = tiny * u
            ef[j] -= tiny * (1.0 + u)


@numba.njit(fastmath=_SUMS, inline="never")
def block_sums(ew, eu, ef, n):
    # the block's three sums, vectorised (also _distill_numba's)
    a = 0.0
    b = 0.0
    c = 0.0
    for j in range(n):
        a += ew[j]
        b += eu[j]
        c += ef[j]
    return a, b, c


@numba.njit(inline="always")
def power_of_two(temperature):
    # whether T (> 0, normal) is a power of two: 1/T exact, so d (1/T) is, and lo = 0
    return float64_to_bits(temperature) & 0xFFFFFFFFFFFFF == 0


@numba.njit(inline="never")
def centred_kl(x, y, m_x, m_y, temperature, shift, scratch):
    r""":math:`D(p\,\|\,q)` (before :math:`T^2`) of one row of first-side scores ``x``
    (maximum ``m_x``) and second-side ``y`` (``m_y``), centred by ``shift`` (an
    estimate of :math:`\mathrm E_p[(y - m_y)/T - (x - m_x)/T]`; module docstring);
    ``scratch`` 3 x 512 float64. For rows of finite logits (``-inf`` on both sides
    of a class too) whose common-path KL is finite."""
    classes = x.shape[0]
    exact = power_of_two(temperature)
    inv_t = 1.0 / temperature
    ew, eu, ef = scratch[0], scratch[1], scratch[2]
    s, s_lo, m, m_lo, f, f_lo = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    for start in range(0, classes, _BLOCK):
        n = min(_BLOCK, classes - start)
        at = slice(start, start + n)
        _block_terms(x[at], y[at], (m_x, m_y), shift, inv_t, temperature, exact, ew, eu, ef)
        a, b, c = block_sums(ew, eu, ef, n)
        s, s_lo = two_sum(s, s_lo, a)
        m, m_lo = two_sum(m, m_lo, b)
        f, f_lo = two_sum(f, f_lo, c)
    total = s + s_lo
    big_m = (m + m_lo) / total
    phi = (f + f_lo) / total
    z = big_m + phi
    series = abs(z) < _SERIES_Y
    return phi + (-(z * z) * _series(z, _PSI0, _PSI_REST) if series else np.log1p(z) - z)


@numba.njit(inline="never")
def centred_kl_row(x, y, temperature, scratch):
    r""":func:`centred_kl` of one row, its maxima and shift found here (a first pass:
    :math:`\mathrm E_p` of :math:`(y - m_y)/T - (x - m_x)/T`)."""
    m_x = x.max()
    m_y = y.max()
    inv_t = 1.0 / temperature
    exact = power_of_two(temperature)
    ew, eu, ef = scratch[0], scratch[1], scratch[2]
    s, s_lo, m, m_lo = 0.0, 0.0, 0.0, 0.0
    for start in range(0, x.shape[0], _BLOCK):
        n = min(_BLOCK, x.shape[0] - start)
        at = slice(start, start + n)
        _block_terms(x[at], y[at], (m_x, m_y), 0.0, inv_t, temperature, exact, ew, eu, ef)
        a, b, _ = block_sums(ew, eu, ef, n)
        s, s_lo = two_sum(s, s_lo, a)
        m, m_lo = two_sum(m, m_lo, b)
    return centred_kl(x, y, m_x, m_y, temperature, (m + m_lo) / (s + s_lo), scratch)


@numba.njit(cache=True)
def centred_kl_rows(first, second, temperature):
    r""":func:`centred_kl_row` of each row of C-contiguous float64 ``first`` (the KL's
    first side: :math:`D(p\,\|\,q)`, :math:`p` of ``first``) and ``second``: the full
    path's rows of a KL in from ``KL_FLOOR`` to ``NEAR_CEILING``."""
    out = np.empty(first.shape[0])
    scratch = np.empty((3, _BLOCK))
    for i in range(first.shape[0]):
        out[i] = centred_kl_row(first[i], second[i], temperature, scratch)
    return out
