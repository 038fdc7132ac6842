# mypy: allow-untyped-defs
# (Numba kernels: their arguments are typed by Numba at the call, not by annotations.)
r"""The fused loss of probability targets of float32 logits (issue 13), by Numba.

Imported on first use only (by ``_cpu_kernels._kernels``, which serves these kernels
to ``_cpu_kernels.target_row_losses``), as :mod:`._cpu_kernels_numba` is: importing it
imports Numba.

After the row statistics (``_cpu_kernels.row_statistics``: :math:`m_i = \max_c z_{ic}/T`
and :math:`\ell_i = \log\sum_c e^{z_{ic}/T - m_i}`, both float64), one pass over each row
of the float32 logits and targets forms, in float64,

.. math::

    A_i = \sum_c w_c \tilde t_{ic},\qquad
    B_i = \sum_c w_c \tilde t_{ic}\,(z_{ic}/T - m_i) \le 0,\qquad
    \omega_i = \sum_c w_c t_{ic}

with :math:`\tilde t = \text{keep}\cdot t + \text{spread}` (label smoothing, the
generic path's ``_terms.target_terms``) and the loss
:math:`L_i = A_i\ell_i - B_i + \lambda\,\omega_i\,(m_i + \ell_i)^2`: the generic path's
``_terms.row_loss``, whose two parts :math:`A\ell \ge 0` and :math:`-B \ge 0` do not
cancel. A term of weight :math:`w_c\tilde t_{ic} = 0` is absent even where
:math:`z_{ic} = -\infty` (``_reduction.weighted_term``). Without class weights
:math:`\omega_i = 1` (the generic path's example weight), not :math:`\sum_c t_{ic}`.
No N x V array is formed, and neither input is copied: each entry is widened to float64
as it is read.

Accuracy. :math:`\sigma_c = (z_c - \mathrm{top})/T` as the generic path forms it
(``_terms.softmax_rows``), with :math:`\mathrm{top}` the row's largest float32 logit,
recovered from :math:`m` by :func:`row_top`: :math:`z_c - \mathrm{top}` is exact in
float64 and :math:`\sigma` is exactly 0 at the maximum (and its ties), so a confident
one-hot row keeps its tiny loss (:math:`z/T - m` had left :math:`m`'s rounding there:
3e-15 for a loss of 1.7e-18 at :math:`T = 0.7`). Every sum is of terms of one sign
(:math:`w\tilde t \ge 0`, :math:`\sigma \le 0`), accumulated in float64: reassociating
them (``reassoc``, in :func:`target_row_sums` only, so that LLVM vectorises the loop)
changes their bits, not their error bound (a relative :math:`V 2^{-53}` at worst), and
the vector width (AVX2 or AVX-512) can move the float64 loss in its last bits only.
The per-row loss is then within the statistics' error (:math:`\ell` within about 5e-11
relative) of the exact one, far inside half a float32 ulp before its one rounding.
The kernel body (``_cpu_kernels_numba._twins``'s flags) adds two non-negative terms
and forms products; :func:`row_top` has its own ``fastmath`` (``contract`` only: no
``arcp`` on its quotient) and the row sums theirs (``tests/test_issue13_fastmath_
inheritance.py``).
"""

from __future__ import annotations

import numba
import numpy as np

from .._intrinsics_numba import prefer_wide_vectors
from ._cpu_kernels_numba import _twins

__all__ = [
    "example_weight_kernel",
    "example_weight_kernel_serial",
    "row_example_weight",
    "row_top",
    "target_loss_kernel",
    "target_loss_kernel_serial",
    "target_row_sums",
]

_FLAGS = {"contract"}  # row_top's: no reassoc, no arcp (its quotient)
_SUM_FLAGS = {"contract", "reassoc", "nsz", "arcp"}  # the row sums' (module docstring)


@numba.njit(fastmath=_SUM_FLAGS, inline="always")
def _weighted_sums(row, t_row, top, inv_t, keep, spread, weight):
    # (A, B, omega) of a row with class weights
    a = 0.0
    b = 0.0
    omega = 0.0
    for j in range(row.shape[0]):
        t = np.float64(t_row[j])
        wt = weight[j] * (keep * t + spread)
        d = (np.float64(row[j]) - top) * inv_t  # 0 at the maximum, exactly
        a += wt
        b += wt * d if wt != 0.0 else 0.0  # a term of weight 0 is absent, even at -inf
        omega += weight[j] * t
    return a, b, omega


@numba.njit(fastmath=_SUM_FLAGS, inline="always")
def _plain_sums(row, t_row, top, inv_t, keep, spread):
    # (A, B, 1) of a row without class weights
    a = 0.0
    b = 0.0
    for j in range(row.shape[0]):
        wt = keep * np.float64(t_row[j]) + spread
        d = (np.float64(row[j]) - top) * inv_t  # 0 at the maximum, exactly
        a += wt
        b += wt * d if wt != 0.0 else 0.0  # a term of weight 0 is absent, even at -inf
    return a, b, 1.0


@numba.njit(fastmath=_SUM_FLAGS, inline="never")
def target_row_sums(row, t_row, top, inv_t, keep, spread, weight):
    # (A, B, omega) of one row in float64 (omega 1 without class weights), ``top`` its
    # largest logit: out of line, with its own flags (the sums' reassoc stays here)
    prefer_wide_vectors()
    if weight.shape[0] == row.shape[0]:
        return _weighted_sums(row, t_row, top, inv_t, keep, spread, weight)
    return _plain_sums(row, t_row, top, inv_t, keep, spread)


@numba.njit(fastmath=_FLAGS, inline="never")
def row_top(row, m, inv_t):
    # The row's largest float32 logit from m = top / T (rounded once, by the statistics
    # kernel): m / (1/T) is within 2^-52 of it relatively, and float32 has 24 bits, so
    # the nearest float32 is it, where m is a normal float64 (else the row's maximum)
    if abs(m) >= 1e-300:
        return np.float64(np.float32(m / inv_t))
    return np.float64(np.max(row))


def target_loss_kernel(
    z, targets, m, ell, inv_t, keep, spread, weight, z_loss, out_loss, out_omega
):
    # Per row: L = A ell - B + z_loss omega (m + ell)^2 and omega, float64 (module docstring)
    for i in numba.prange(z.shape[0]):
        top = row_top(z[i], m[i], inv_t)
        a, b, omega = target_row_sums(z[i], targets[i], top, inv_t, keep, spread, weight)
        loss = a * ell[i] - b
        if z_loss != 0.0:
            lse = m[i] + ell[i]
            loss += z_loss * omega * (lse * lse)
        out_loss[i] = loss
        out_omega[i] = omega


target_loss_kernel, target_loss_kernel_serial = _twins(target_loss_kernel)


@numba.njit(fastmath=_SUM_FLAGS, inline="never")
def row_example_weight(t_row, weight):
    # omega = sum_c w_c t_c of one row in float64, as _weighted_sums forms it (terms of one
    # sign: reassoc moves its bits, not its bound)
    prefer_wide_vectors()
    omega = 0.0
    for j in range(t_row.shape[0]):
        omega += weight[j] * np.float64(t_row[j])
    return omega


def example_weight_kernel(targets, weight, out_omega):
    # Per row: omega = sum_c w_c t_c in float64, from float32 targets and float64 class
    # weights as given (the gradient's 'mean' normaliser, before its kernel runs: issue 13)
    for i in numba.prange(targets.shape[0]):
        out_omega[i] = row_example_weight(targets[i], weight)


example_weight_kernel, example_weight_kernel_serial = _twins(example_weight_kernel)
