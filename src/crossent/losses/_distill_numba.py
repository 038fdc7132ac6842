# mypy: allow-untyped-defs
# (Numba kernels: their arguments are typed by Numba at the call, not by annotations.)
r"""The fused distillation rows of teacher logits (issue 13 follow-up), by Numba.

Imported on first use only (``crossent.torch._distill_cpu``): importing it imports
Numba. Two kernels over rows x classes float32 or float64 student logits :math:`z` and
teacher logits :math:`v` (C-contiguous, one dtype), each entry widened to float64 as it
is read, no N x V temporary, threads over rows.

:func:`distillation_forward_kernel`, per row: the maxima :math:`m_z, m_v` (one pass),
then in one pass :math:`\sigma_c = (z_c - m_z)/T`, :math:`\tau_c = (v_c - m_v)/T` (the
generic path's ``tempered_log_softmax``: shift, then divide),

.. math::

    S_s = \sum_c e^{\sigma_c},\qquad S_t = \sum_c e^{\tau_c},\qquad
    W = \sum_c e^{\tau_c}(\tau_c - \sigma_c),

each by a compensated sum (Knuth's TwoSum: within about an ulp of float64 whatever
:math:`C`), and the KL

.. math::

    D(t\,\|\,s) = \sum_c t_c(\log t_c - \log s_c) = W/S_t + \ell_s - \ell_t,
    \qquad \ell = \operatorname{log1p}(S - 1),

the same sum as the generic path's terms (:math:`t_c = e^{\tau_c}/S_t`,
:math:`\log t_c - \log s_c = \tau_c - \sigma_c - \ell_t + \ell_s`, :math:`\sum_c t_c =
1`), with the same error: a few float64 ulps of :math:`\ell_s, \ell_t, W/S_t`
(:math:`S - 1`: the sums leave out the first maximum's term, 1 exactly, as the
generic path's ``log1p`` of the other terms: a sum with it would lose the digits of a
small :math:`\ell`, which the difference :math:`\ell_s - \ell_t` needs). A term
with :math:`e^{\tau_c} = 0` is absent (0 log 0 = 0), even beside :math:`\sigma_c =
-\infty`; :math:`e^{\tau_c} > 0` beside :math:`e^{\sigma_c} = 0` makes the row's KL
``inf``. Rows that hold a NaN or ``+inf``, or only ``-inf``, come out NaN (never a
number): the caller validates then. Each row's :math:`(D, m_z, \ell_s, m_v, \ell_t)`
is written to ``out`` (float64).

:func:`distillation_backward_kernel`, per row, from those statistics:
:math:`g_c = (s_c - t_c)\,r` with :math:`s_c = e^{\sigma_c - \ell_s}`, :math:`t_c =
e^{\tau_c - \ell_t}` (the gradient :math:`T(s - t)` of :math:`T^2 D` in :math:`z`, times
the row's upstream: :math:`r = uT`), formed in float64 and rounded once to ``out``'s
dtype; and whether :math:`\max_c |s_c - t_c| < 2^{-15}\max_c t_c`
(``_near_rows.SPREAD_FLOOR``: the rows where the difference cancels, which the caller
forms again as the NumPy gradient does).

Rows that hold a NaN or an infinity (``-inf`` logits are valid) come out with a NaN
:math:`D`: the caller validates them, and forms the valid ones by the NumPy function
(exact there). On the others every :math:`\sigma_c, \tau_c` is finite and
:math:`\le 0`, and each exponential is ``_cpu_kernels_numba.exp_of_pair``'s (within
0.7 float64 ulp; the softmax kernels' 5e-11 polynomial would show in :math:`s - t`),
0 below :math:`-708` (where :math:`e^x` has no float32 digit and a float64 one only
past the subnormal range: a teacher's :math:`t_c` of :math:`10^{-308}` is 0 there,
as in float32 logits' work). The loop over a block of :data:`BLOCK` classes has no
reduction, so LLVM vectorises its exponentials; each block's terms are then summed
with ``reassoc`` (vectorised, an error bound of :math:`2^{-53}` times the block's
lanes) and the block sums added to the row's by TwoSum: the row's sums within a few
float64 ulps of their terms' magnitudes whatever :math:`C`.
"""

from __future__ import annotations

import numba
import numpy as np

from ._cpu_kernels_numba import exp_of_pair, two_sum
from ._near_rows import SPREAD_FLOOR as _SPREAD_FLOOR

__all__ = ["BLOCK", "distillation_backward_kernel", "distillation_forward_kernel"]

BLOCK = 512
"""Classes per block of the kernels' inner loops (their float64 buffers: 12 KiB a row)."""

_FLOOR = -708.0  # below: e^x is 0 here (module docstring)
_LOOP = {"contract"}  # the blocks' loops: no reassoc (exp_of_pair's reduction is exact)
_SUMS = {"contract", "reassoc", "nsz"}  # the blocks' sums and maxima (finite terms)


@numba.njit(fastmath=_LOOP, inline="always")
def _exp(x):
    # e^x for x <= 0 within 0.7 float64 ulp, 0 below the floor
    return exp_of_pair(x, 0.0, 0.0) if x > _FLOOR else 0.0


@numba.njit(fastmath=_SUMS, inline="never")
def _sums(es, et, ew, n):
    # the block's three sums, vectorised (terms of one sign for es and et)
    a = 0.0
    b = 0.0
    w = 0.0
    for j in range(n):
        a += es[j]
        b += et[j]
        w += ew[j]
    return a, b, w


@numba.njit(fastmath=_SUMS, inline="never")
def _maxima(eg, et, n):
    # max |g| and max t of a block (finite)
    spread = 0.0
    top = 0.0
    for j in range(n):
        spread = max(spread, abs(eg[j]))
        top = max(top, et[j])
    return spread, top


@numba.njit(fastmath=_LOOP, inline="never")
def _row_maxima(zr, vr):
    # the row maxima, their first places, and whether the row holds a NaN or an infinity
    # (its check sum is NaN then)
    mz = -np.inf
    mv = -np.inf
    jz = 0
    jv = 0
    check = 0.0
    for c in range(zr.shape[0]):
        a = np.float64(zr[c])
        b = np.float64(vr[c])
        if a > mz:
            mz = a
            jz = c
        if b > mv:
            mv = b
            jv = c
        check += a * 0.0 + b * 0.0
    return mz, mv, jz, jv, check == 0.0


@numba.njit(fastmath=_LOOP, inline="never")
def _forward_block(zr, vr, start, n, mz, mv, temperature, es, et, ew):
    # the block's terms e^sigma, e^tau and e^tau (tau - sigma) (0 where e^tau is)
    for j in range(n):
        sigma = (np.float64(zr[start + j]) - mz) / temperature
        tau = (np.float64(vr[start + j]) - mv) / temperature
        es[j] = _exp(sigma)
        e = _exp(tau)
        et[j] = e
        ew[j] = e * (tau - sigma) if e != 0.0 else 0.0


@numba.njit(fastmath=_LOOP, inline="never")
def _backward_block(zr, vr, orow, start, n, stats, temperature, r, eg, et):
    # the block's entries (s - t) r, and its s - t and t for the row's maxima
    mz, ell_s, mv, ell_t = stats[1], stats[2], stats[3], stats[4]
    for j in range(n):
        s = _exp((np.float64(zr[start + j]) - mz) / temperature - ell_s)
        t = _exp((np.float64(vr[start + j]) - mv) / temperature - ell_t)
        g = s - t
        eg[j] = g
        et[j] = t
        orow[start + j] = g * r


@numba.njit(nogil=True, cache=True)
def distillation_forward_kernel(z, v, temperature, out):
    # Per row: (D, m_z, ell_s, m_v, ell_t), float64 (module docstring)
    classes = z.shape[1]
    buffers = np.empty((3, BLOCK))  # one set for every row
    es, et, ew = buffers[0], buffers[1], buffers[2]
    for i in range(z.shape[0]):
        zr = z[i]
        vr = v[i]
        mz, mv, jz, jv, finite = _row_maxima(zr, vr)
        out[i, 1] = mz
        out[i, 3] = mv
        if not finite:
            out[i, 0] = np.nan
            out[i, 2] = np.nan
            out[i, 4] = np.nan
            continue
        # S - 1, without the maximum's term (1 exactly): ell = log1p(S - 1) keeps the
        # digits of a small ell, which the KL's difference ell_s - ell_t needs
        ss, ss_lo, st, st_lo, w, w_lo = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
        for start in range(0, classes, BLOCK):
            n = min(BLOCK, classes - start)
            _forward_block(zr, vr, start, n, mz, mv, temperature, es, et, ew)
            if start <= jz < start + n:
                es[jz - start] = 0.0
            if start <= jv < start + n:
                et[jv - start] = 0.0
            a, b, c = _sums(es, et, ew, n)
            ss, ss_lo = two_sum(ss, ss_lo, a)
            st, st_lo = two_sum(st, st_lo, b)
            w, w_lo = two_sum(w, w_lo, c)
        t_rest = st + st_lo
        ell_s = np.log1p(ss + ss_lo)
        ell_t = np.log1p(t_rest)
        out[i, 0] = (w + w_lo) / (1.0 + t_rest) + (ell_s - ell_t)
        out[i, 2] = ell_s
        out[i, 4] = ell_t


@numba.njit(nogil=True, cache=True)
def distillation_backward_kernel(z, v, stats, temperature, scale, out, spread_small):
    # Per row: out = (s - t) * scale[i] and whether the row's spread is small (docstring);
    # rows whose statistics are not finite are left to the caller (0 here)
    classes = z.shape[1]
    buffers = np.empty((2, BLOCK))  # one set for every row
    eg, et = buffers[0], buffers[1]
    for i in range(z.shape[0]):
        spread_small[i] = False
        if not np.isfinite(stats[i, 0]):
            out[i, :] = 0.0
            continue
        spread = 0.0
        top = 0.0
        for start in range(0, classes, BLOCK):
            n = min(BLOCK, classes - start)
            _backward_block(z[i], v[i], out[i], start, n, stats[i], temperature, scale[i], eg, et)
            a, b = _maxima(eg, et, n)
            spread = max(spread, a)
            top = max(top, b)
        spread_small[i] = spread < _SPREAD_FLOOR * top
