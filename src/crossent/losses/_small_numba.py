r"""One compiled call per small softmax cross-entropy of float32 logits (issue 13, Numba).

Design
------
On a row of 10 classes the work of a loss is some 20 exponentials; what costs is the
Python around it (a NumPy call is about a microsecond). :func:`label_loss` and
:func:`label_gradient` do, in one Numba call on the calling thread, everything the lean
path of ``_softmax.py`` does for float32 logits with integer labels and no per-row
weights: the screening of the rows (the fused kernel's *suspect* flag: a NaN, ``+inf``,
a row of ``-inf``, a label outside ``[0, C)``), the row statistics, the per-row loss and
its reduction (or the gradient), with label smoothing (``label_terms``' smoothed
:math:`A` and :math:`B`, the gradient's uniform term) when asked. A suspect row returns
``False`` and the caller takes the full path, which names what is wrong.

Bit for bit the full path's values
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
* The row statistics and the gradient are the fused kernels' own compiled code
  (``_cpu_kernels_numba``'s serial twins, called from here), so they are the kernels'
  values, whatever their fast-math flags do.
* The per-row loss repeats ``_terms.row_loss`` with :math:`A = \omega = 1` (in
  float64): :math:`\ell - (z'_y - m)`, plus :math:`\lambda\,\mathrm{LSE}^2` as
  ``float32(z_loss) * (lse * lse)`` (the full path's :math:`\omega` is a float32 one,
  which rounds :math:`\lambda` to float32 in ``z_loss * omega``); these functions are
  compiled *without* fast-math, so no product is contracted into an FMA and each
  operation rounds as NumPy's does.
* The reduction repeats ``_reduction.reduce_loss``: the float64 sum in the order of
  NumPy's pairwise summation (:func:`pairwise_sum`: 8 accumulators on blocks of up to
  128 terms, halves above), rounded once to float32; then, in float32 as NumPy does
  it for a float32 array and a Python float, the division by the number of rows for
  ``'mean'`` and by :math:`\ln b` for ``base``, and ``+ 0.0`` (no ``-0.0``).
* The gradient's coefficients repeat ``_softmax._kernel_gradient`` and
  ``_reduction.scale_for_reduction``: for ``'mean'`` the scale :math:`1/N` (and its
  division by :math:`\ln b`) is formed in float32, as NumPy forms
  ``1.0 / np.float32(N)``; otherwise in float64.

``tests/losses/test_issue13_compiled_small.py`` pins all of it against the full path.

Float64 logits
~~~~~~~~~~~~~~
The ``*64`` functions at the end are the compiled parts of the float64 hybrid
(``_softmax_small``'s docstring): the generic path's arithmetic between the np.exp and
np.log1p that the caller runs, pinned bit for bit by
``tests/losses/test_issue13_float64_small.py``.

The row sums (:func:`block_sum`, :func:`pairwise_sum`, :func:`row_sum`), the hybrid's
screening and shift (:func:`shift_rows64`, :func:`rest_of_rows64`) and the reduction
(:func:`reduce_rows`) are generic in the dtype, float64 or float32: they compute in the
arrays' dtype as NumPy does (a float32 row summed with float32 accumulators, a Python
float rounded to float32 before it meets a float32 array), so the soft-target and
distillation shortcuts (``_small_targets_numba``) run them on float32 inputs too.

Numba caches each function on disk (``cache=True``) with the kernels it calls compiled
in; its cache is keyed by this file, so after editing the kernels' module in a source
checkout, touch this file (or clear ``__pycache__``) to recompile. Importing this
module imports Numba: ``_softmax_small`` imports it on the first call that it takes.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from ._cpu_kernels_numba import (
    gradient_kernel_serial,
    row_statistics_kernel_serial,
    smoothed_gradient_kernel_serial,
)
from ._far_lse import FAR_LSE as _FAR_LSE
from ._kernel_inputs import HALF_LOG as _HALF_LOG

__all__ = [
    "LABEL",
    "MEAN",
    "NONE",
    "PARTS",
    "REST",
    "SUM",
    "TOP",
    "block_sum",
    "label_gradient",
    "label_gradient64",
    "label_loss",
    "label_loss64",
    "pairwise_sum",
    "reduce_rows",
    "rest_of_rows64",
    "row_sum",
    "shift_rows64",
    "subtract_rows64",
]

#: The reductions, as the compiled functions take them.
NONE, SUM, MEAN, PARTS = 0, 1, 2, 3

#: Rows per block of the statistics kernel (``_cpu_kernels._ROWS_PER_BLOCK``); serial,
#: it changes nothing but the order in which the next row's maximum is taken.
_BLOCK = 32


@numba.njit(cache=True)
def pairwise_sum(a: np.ndarray) -> Any:
    """``np.add.reduce(a)`` for 1-d float64 or float32 ``a``, in NumPy's order of additions
    and in ``a``'s dtype (NumPy's float32 loop has float32 accumulators; a float32 sum
    that NumPy accumulates in float64 is this sum of a float64 copy, as NumPy casts).

    NumPy (``pairwise_sum`` in ``loops_utils.h.src``) starts from 0, adds up to 7 terms
    in sequence, takes blocks of up to 128 terms with 8 accumulators (:func:`block_sum`),
    and splits a longer range in two at half its length rounded down to a multiple of
    8, adding the halves' sums. The splits are walked with an explicit stack: Numba
    crashes loading from its cache a function that calls a recursive one.
    """
    if a.shape[0] <= 128:  # one block: no stack (issue 13: four allocations a call)
        return block_sum(a, np.int64(0), a.shape[0])  # int64, not a literal: _statistics
    # (first, length, halves done?) per pending range: 2 per level of splits
    first = np.empty(128, dtype=np.int64)
    length = np.empty(128, dtype=np.int64)
    split = np.zeros(128, dtype=np.bool_)
    sums = np.empty(128, dtype=a.dtype)
    first[0], length[0], pending, done = 0, a.shape[0], 1, 0
    while pending:
        pending -= 1
        start, n = first[pending], length[pending]
        if n <= 128:
            sums[done] = block_sum(a, start, n)
            done += 1
        elif split[pending]:  # both halves summed: left + right
            done -= 1
            sums[done - 1] += sums[done]
        else:
            half = n // 2
            half -= half % 8
            split[pending] = True  # revisited after its halves
            first[pending + 1], length[pending + 1], split[pending + 1] = (
                start + half,
                n - half,
                False,
            )
            first[pending + 2], length[pending + 2], split[pending + 2] = start, half, False
            pending += 3
    return sums[0]


@numba.njit(cache=True)
def block_sum(a: np.ndarray, first: int, n: int) -> Any:
    """NumPy's pairwise sum of ``a[first:first + n]`` for ``n <= 128``: from 0 in sequence
    below 8 terms, else 8 accumulators combined as ``((r0 + r1) + (r2 + r3)) + ((r4 + r5) +
    (r6 + r7))`` and the remainder added after; in ``a``'s dtype."""
    if n < 8:
        total = a.dtype.type(0.0)
        for i in range(first, first + n):
            total += a[i]
        return total
    r0, r1, r2, r3 = a[first], a[first + 1], a[first + 2], a[first + 3]
    r4, r5, r6, r7 = a[first + 4], a[first + 5], a[first + 6], a[first + 7]
    k = first + 8
    stop = first + n - n % 8
    while k < stop:
        r0 += a[k]
        r1 += a[k + 1]
        r2 += a[k + 2]
        r3 += a[k + 3]
        r4 += a[k + 4]
        r5 += a[k + 5]
        r6 += a[k + 6]
        r7 += a[k + 7]
        k += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(k, first + n):
        total += a[i]
    return total


@numba.njit(cache=True)
def _statistics(
    z: np.ndarray, labels: np.ndarray, inv_t: float, need_sum: bool
) -> tuple[Any, Any, Any, Any, bool]:
    """m, ell, z'_y - m and (``need_sum``) sum_c (z'_c - m) per row by the serial
    statistics kernel, and whether a row is suspect.

    Its callers pass ``need_sum`` as a NumPy bool (``np.bool_(False)``), never the
    constant ``False``, as :func:`block_sum`'s callers pass ``first`` as ``np.int64(0)``:
    Numba types a Python constant that compiled code passes to another compiled function
    as a literal (``Literal[bool](False)``) and compiles that function, and the kernels
    it calls, once more for it beside the version for the plain type (issue 13: 1.6 s of
    CPU on a cold cache for this one). The branch it decides is once per row."""
    n = z.shape[0]
    m = np.empty(n)
    ell = np.empty(n)
    zy = np.empty(n)
    total = np.empty(n)
    suspect = np.empty(n, dtype=np.bool_)
    row_statistics_kernel_serial(
        z,
        z.view(np.int32),
        labels,
        np.empty(0),
        inv_t,
        need_sum,
        _BLOCK,
        m,
        ell,
        zy,
        total,
        suspect,
    )
    return m, ell, zy, total, bool(suspect.any())


@numba.njit(cache=True)
def _smoothed_a(eps: float, classes: int) -> float:
    r""":math:`A = (1-\varepsilon) + \varepsilon` of ``label_terms`` with the full path's
    float32 row weights: ``keep * w + spread * C`` in float32 (NumPy rounds the Python
    float ``spread * C`` to float32 before adding it to a float32 array)."""
    keep = np.float32(np.float32(1.0 - eps) * np.float32(1.0))
    return np.float64(keep + np.float32((eps / classes) * np.float64(classes)))


@numba.njit(cache=True)
def label_loss(
    z: np.ndarray,
    labels: np.ndarray,
    inv_t: float,
    z_loss: float,
    reduction: int,
    log_base: float,
    rows: np.ndarray,
    eps: float,
) -> tuple[bool, Any]:
    r"""``(ok, loss)``: the lean path's loss of float32 ``z`` (N x C) and int64 ``labels``.

    ``log_base``: :math:`\ln b`, or 0.0 for nats. For ``NONE`` the per-row losses go
    to ``rows`` (float32, N) and ``loss`` is 0; else ``loss`` is the float32 total (or
    mean). ``ok`` is False, and nothing is computed, when a row is suspect. ``eps``:
    label smoothing, with ``label_terms``' :math:`A` and :math:`B` (the full path's
    row weights are float32 ones, so :math:`1 - \varepsilon` is rounded to float32).
    """
    smooth = eps != 0.0
    m, ell, zy, sums, suspect = _statistics(z, labels, inv_t, smooth)
    if suspect:
        return False, 0.0
    n, classes = z.shape
    # The full path's example weights are float32 ones: z_loss * omega is float32(z_loss)
    factor = np.float64(np.float32(z_loss))
    a = _smoothed_a(eps, classes) if smooth else 1.0
    keep = np.float64(np.float32(1.0 - eps))
    spread = eps / classes
    loss = np.empty(n)
    for i in range(n):
        if smooth:  # A ell - B, B = keep * sigma_y (absent for keep 0) + spread * sum sigma
            label_term = keep * zy[i] if keep != 0.0 else 0.0
            value = a * ell[i] - (label_term + spread * sums[i])
        else:
            value = ell[i] - zy[i]
        if z_loss != 0.0:
            lse = m[i] + ell[i]
            value = value + factor * (lse * lse)
        loss[i] = value
    unit = np.float32(log_base)
    if reduction == NONE:
        for i in range(n):
            value32 = np.float32(loss[i])
            if log_base != 0.0:
                value32 = value32 / unit
            rows[i] = value32 + np.float32(0.0)
        return True, 0.0
    total = np.float32(pairwise_sum(loss))
    if reduction == MEAN:
        total = total / np.float32(n)
    if log_base != 0.0:
        total = total / unit
    return True, total + np.float32(0.0)


@numba.njit(cache=True)
def label_gradient(
    z: np.ndarray,
    labels: np.ndarray,
    temperature: float,
    z_loss: float,
    reduction: int,
    log_base: float,
    out: np.ndarray,
    eps: float,
) -> bool:
    r"""The lean path's gradient of float32 ``z`` (N x C) and int64 ``labels``, into ``out``.

    Row i is :math:`c_i\,p_i - s\,(1-\varepsilon)\,e_{y_i} - s\,\varepsilon/C` with
    :math:`s` the reduction's scale over :math:`T` and :math:`c_i = (A + 2\lambda\,
    \mathrm{LSE}_i)\,s` (``_kernel_gradient`` with :math:`\omega = 1`). False, with
    nothing written, when a row is suspect or, without smoothing, of
    :math:`|\mathrm{LSE}| \ge` ``_far_lse.FAR_LSE`` (the full path forms it again from
    the row maximum, issue 13; the smoothed kernel corrects the shift by a pass over
    the row). False too, with smoothing, where such a row came out non-finite (the
    correction's :math:`e^{\mathrm{LSE} - s}` overflows once an ulp of the LSE passes
    700): ``out`` then holds the kernel's entries, which the full path writes again.
    """
    inv_t = 1.0 / temperature
    m, ell, shifted_y, _, suspect = _statistics(z, labels, inv_t, np.bool_(False))
    if suspect:
        return False
    n, classes = z.shape
    if reduction == MEAN:  # NumPy: 1.0 / np.float32(n), then / ln b, in float32
        scale32 = np.float32(1.0) / np.float32(n)
        if log_base != 0.0:
            scale32 = scale32 / np.float32(log_base)
        scale = float(scale32)
    else:
        scale = 1.0 / log_base if log_base != 0.0 else 1.0
    row_scale = scale / temperature
    keep = 1.0 - eps
    # A = (1 - eps) + (eps / C) C in float64, as _fast_gradient forms it (issue 13)
    a = keep + (eps / classes) * np.float64(classes) if eps != 0.0 else 1.0
    lse = np.empty(n)
    p_coef = np.empty(n)
    target_coef = np.empty(n)
    # the label's c - g from c's parts (_terms.label_offset, issue 13), with a z-loss
    offset = np.empty(n if z_loss != 0.0 else 0)
    for i in range(n):
        lse[i] = m[i] + ell[i]
        coef = a + 2.0 * z_loss * lse[i] if z_loss != 0.0 else a
        p_coef[i] = coef * row_scale
        target_coef[i] = keep * row_scale if eps != 0.0 else row_scale
        if z_loss != 0.0:
            offset[i] = ((a - keep) + 2.0 * z_loss * lse[i]) * row_scale
    if eps != 0.0:  # every entry from the exact softmax (the full path's kernel)
        smoothed_gradient_kernel_serial(
            z,
            labels,
            lse,
            inv_t,
            temperature,
            p_coef,
            target_coef,
            np.full(classes, eps / classes),
            np.full(n, row_scale),
            offset,
            out,
        )
        # a row of so large an LSE that the kernel's correction of its shift overflows
        # (float32 [1, 2, 3] at T = 1e-30 gave inf, the truth +-3.3e28): the full path
        # forms it again (``_far_lse``, every entry of ``out`` written again)
        for i in range(n):
            if abs(lse[i]) >= _FAR_LSE:
                for c in range(classes):
                    if not math.isfinite(out[i, c]):
                        return False
        return True
    for i in range(n):  # (the shift m + ell rounds to an ulp of m: issue 13)
        if abs(lse[i]) >= _FAR_LSE:
            return False
    no = np.empty(0)  # no smoothing term
    # log p_y = (z'_y - m) - ell: the label's entry exact at any confidence (issue 13)
    log_p = shifted_y - ell
    gradient_kernel_serial(z, labels, lse, inv_t, p_coef, target_coef, no, no, log_p, offset, out)
    return True


# ------------------------------------------------------------------- float64 (hybrid)
# The generic path's float64 arithmetic between NumPy's transcendental ufuncs: the
# caller (``_softmax_small``) runs np.exp and np.log1p on the arrays these functions
# fill, exactly where ``softmax_rows``, ``log_sum_exp_shifted`` and ``probs`` run them,
# so the values are NumPy's on every CPU (its SIMD exp and log1p included). Each
# function returns False, having written nothing the caller hands back, where the full
# path would raise, warn or produce a value that is not finite: the caller then takes
# the full path, which does what it does (names the bad input, or warns).

#: Rows of the per-row buffer ``rows`` (4 x N) the float64 functions share.
TOP, LABEL, REST, SUM = 0, 1, 2, 3


@numba.njit(cache=True)
def shift_rows64(
    z: np.ndarray, labels: np.ndarray, temperature: float, shifted: np.ndarray, rows: np.ndarray
) -> bool:
    r"""Screen float64 or float32 ``z`` (N x C) and ``labels``, then ``softmax_rows`` up
    to its exp, in ``z``'s dtype (``shifted`` and ``rows`` are of it).

    :math:`\sigma = (z - m)/T` into ``shifted``, :math:`m/T` into ``rows[TOP]`` and
    :math:`\sigma_y` into ``rows[LABEL]``; the division only for :math:`T \ne 1`, as
    there (where NumPy's overflow of the division is ignored). False for a NaN, a
    ``+inf``, a row of ``-inf``, a label outside ``[0, C)``, or a finite logit whose
    difference from the maximum overflows (NumPy would warn).
    """
    n, classes = z.shape
    divide = temperature != 1.0
    t = z.dtype.type(temperature)  # NumPy rounds a Python float to a float32 array's dtype
    for i in range(n):
        label = labels[i]
        if label < 0 or label >= classes:
            return False
        top = z.dtype.type(-np.inf)
        for c in range(classes):
            value = z[i, c]
            if value != value or value == np.inf:
                return False
            top = max(top, value)
        if top == -np.inf:
            return False
        for c in range(classes):
            value = z[i, c]
            difference = value - top
            if difference == -np.inf and value != -np.inf:
                return False
            shifted[i, c] = difference / t if divide else difference
        rows[TOP, i] = top / t if divide else top
        rows[LABEL, i] = shifted[i, label]
    return True


@numba.njit(cache=True)
def rest_of_rows64(
    terms: np.ndarray, shifted: np.ndarray, rows: np.ndarray, need_sum: bool
) -> None:
    r"""``log_sum_exp_shifted`` between its exp and its log1p: into ``rows[REST]``,
    :math:`\sum_{c:\,\sigma_c \ne 0} e^{\sigma_c} + (n_0 - 1)`; and, ``need_sum``,
    :math:`\sum_c \sigma_c` (``weighted_class_sum`` for label smoothing) into
    ``rows[SUM]``.

    ``terms`` (:math:`e^\sigma`, NumPy's) has 1 subtracted where :math:`\sigma = 0`, in
    place, as there; each row is summed in NumPy's pairwise order (one block of 8
    accumulators up to 128 classes) from 0.
    """
    n, classes = terms.shape
    for i in range(n):
        ties = 0
        for c in range(classes):
            if shifted[i, c] == 0.0:
                terms[i, c] -= 1.0
                ties += 1
        total = row_sum(terms[i])
        rows[REST, i] = total + terms.dtype.type(ties - 1)  # (ties - 1 rounded first)
        if need_sum:
            rows[SUM, i] = row_sum(shifted[i])


@numba.njit(cache=True)
def row_sum(row: np.ndarray) -> Any:
    """``np.add.reduce`` of one contiguous row, from 0 in NumPy's pairwise order and in
    the row's dtype."""
    classes = row.shape[0]
    zero = row.dtype.type(0.0)
    first = np.int64(0)  # not the literal 0: one block_sum for every caller (_statistics)
    return zero + (block_sum(row, first, classes) if classes <= 128 else pairwise_sum(row))


@numba.njit(cache=True)
def label_loss64(
    rows: np.ndarray,
    ell: np.ndarray,
    z_loss: float,
    reduction: int,
    log_base: float,
    out: np.ndarray,
    eps: float,
    classes: int,
) -> tuple[bool, float]:
    r"""``(ok, loss)`` from the rows of :func:`shift_rows64` and :math:`\ell` (NumPy's
    log1p): the lean path's ``row_loss`` (:math:`\ell - \sigma_y`, plus
    :math:`\lambda\,\mathrm{LSE}^2`) and ``reduce_loss``, in float64.

    ``log_base``: :math:`\ln b`, or 0.0 for nats. For ``NONE`` the per-row losses go to
    ``out`` (N) and ``loss`` is 0. ``ok`` is False where a log-sum-exp, a loss or the
    reduced loss is not finite (the full path may warn there). ``eps``: label
    smoothing over ``classes``, with ``label_terms``' :math:`A = (1-\varepsilon) +
    \varepsilon` and :math:`B = (1-\varepsilon)\sigma_y + \tfrac{\varepsilon}{C}
    \sum_c \sigma_c` (``rows[SUM]``).
    """
    n = ell.shape[0]
    keep, spread = 1.0 - eps, eps / classes
    a = keep + spread * float(classes)
    loss = np.empty(n)
    for i in range(n):
        lse = rows[TOP, i] + ell[i]  # the full path forms it for every call
        if eps != 0.0:  # the label's term is absent for keep = 0
            label_term = keep * rows[LABEL, i] if keep != 0.0 else 0.0
            value = a * ell[i] - (label_term + spread * rows[SUM, i])
        else:
            value = ell[i] - rows[LABEL, i]
        if z_loss != 0.0:
            value = value + z_loss * (lse * lse)
        if not (np.isfinite(lse) and np.isfinite(value)):
            return False, 0.0
        loss[i] = value
    return reduce_rows(loss, (reduction, log_base, out))


@numba.njit(cache=True)
def reduce_rows(loss: np.ndarray, reduce_with: Any) -> tuple[bool, float]:
    r"""``(ok, value)``: ``reduce_loss`` of the per-row values ``loss`` (float64, holding
    values of the result's dtype, as ``reduce_sum`` casts them); ``reduce_with`` is
    ``(reduction, log_base, out)``: the reduction (:data:`NONE`, :data:`SUM`,
    :data:`MEAN`, :data:`PARTS`), :math:`\ln b` or 0.0 for nats, and the per-row output
    of ``'none'``, whose dtype (float64 or float32) is the result's.

    As ``reduce_loss`` and ``finalize``: for ``'none'`` each value in the dtype divided
    by :math:`\ln b` (NumPy rounds the Python float to the dtype), then ``+ 0`` (no
    ``-0.0``), into ``out``, and ``value`` is 0; else the float64 sum in NumPy's
    pairwise order rounded once to the dtype, divided there by the number of rows for
    ``'mean'`` and by :math:`\ln b`, ``+ 0``; ``value`` is a float64 holding it. ``ok``
    is False, with nothing reduced, where a value is not finite (NumPy may warn there).
    """
    reduction, log_base, out = reduce_with
    kind = out.dtype.type
    zero = kind(0.0)
    n = loss.shape[0]
    if reduction == NONE:
        for i in range(n):
            value = kind(loss[i])
            if log_base != 0.0:
                value = value / kind(log_base)
            if not np.isfinite(value):
                return False, 0.0
            out[i] = value + zero
        return True, 0.0
    total = kind(pairwise_sum(loss))
    if reduction == MEAN:
        total = total / kind(n)
    if log_base != 0.0:
        total = total / kind(log_base)
    if not np.isfinite(total):
        return False, 0.0
    return True, np.float64(total + zero)


@numba.njit(cache=True)
def subtract_rows64(shifted: np.ndarray, ell: np.ndarray) -> None:
    r""":math:`\sigma - \ell`, in place: the argument of ``probs``' exp."""
    n, classes = shifted.shape
    for i in range(n):
        for c in range(classes):
            shifted[i, c] = shifted[i, c] - ell[i]


@numba.njit(cache=True)
def label_gradient64(
    p: np.ndarray,
    labels: np.ndarray,
    rows: np.ndarray,
    ell: np.ndarray,
    label_expm1: np.ndarray,
    z_loss: float,
    temperature: float,
    reduction: int,
    log_base: float,
    out: np.ndarray,
    eps: float,
) -> bool:
    r"""The lean path's float64 gradient from :math:`p` (NumPy's exp, overwritten) and
    :math:`p_y - 1` (``label_expm1``: NumPy's expm1 of :math:`\sigma_y - \ell`, taken where
    :math:`p_y > 1/2`):
    :math:`((c_i p_i - \tilde t_i)/T)\,s`, with :math:`c_i = A + 2\lambda\,
    \mathrm{LSE}_i` (``p_coefficient`` with :math:`\omega = 1`), the smoothed target
    :math:`\tilde t = (1-\varepsilon)e_y + \varepsilon/C` as ``label_target_gradient``
    forms it, and :math:`s` ``scale_for_reduction``'s factor, then copied into ``out``
    unless ``out`` is ``p``. False, with nothing written into ``out``, where a value is
    not finite (the full path may warn).
    """
    n, classes = p.shape
    keep, spread = 1.0 - eps, eps / classes
    a = keep + spread * float(classes) if eps != 0.0 else 1.0
    on_label = keep + spread if eps != 0.0 else 1.0  # where(mask, keep, 0) + spread
    off_label = 0.0 + spread if eps != 0.0 else 0.0
    scale = 1.0 / np.float64(n) if reduction == MEAN else 1.0
    if log_base != 0.0:
        scale = scale / log_base
    divide = temperature != 1.0
    for i in range(n):
        lse = rows[TOP, i] + ell[i]  # the full path forms it for every call
        coef = a + 2.0 * z_loss * lse if z_loss != 0.0 else a
        if not (np.isfinite(lse) and np.isfinite(coef)):
            return False
        # c - t_y from c's parts, as _terms.label_offset (issue 13)
        gap = a - on_label
        if z_loss != 0.0:
            gap = gap + 2.0 * z_loss * lse
        label = labels[i]
        for c in range(classes):
            # p_y > 1/2 (the same test as _exact_label_entries, on the same log p_y)
            if c == label and rows[LABEL, i] - ell[i] > _HALF_LOG:
                value = coef * label_expm1[i] + gap
            elif c == label:
                value = coef * p[i, c] - on_label
            else:
                value = coef * p[i, c] - off_label
            if divide:
                value = value / temperature
            value = value * scale
            if not np.isfinite(value):
                return False
            p[i, c] = value
    if out.ctypes.data != p.ctypes.data:
        out[...] = p
    return True
