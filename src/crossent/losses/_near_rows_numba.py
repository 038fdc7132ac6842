r"""``_near_rows.NearRows``' loss and gradients compiled for float64 NumPy rows
(issue 13, Numba).

The formulas of ``_near_rows`` (its docstring derives them), one row at a time in a
few scratch rows: :math:`\log p` by ``_far_gaps.tempered_log_softmax64``'s steps, the
two shifts of ``_parts`` and :math:`T^k D` of ``_scaled_kl`` (the Horner series ``_H``
and ``_PSI``, the switches ``_SERIES_X`` and ``_SERIES_Y``, :math:`T^2 x` as
``times_temperature_squared`` forms it), the forward gradient of
``NearRows._forward_gradient`` and the reverse one of
``_far_gaps.reverse_distillation_gradient64``. Row sums in NumPy's pairwise order
(``_small_numba.row_sum``); ``exp``, ``expm1``, ``log`` and ``log1p`` are libm's, not
NumPy's vectorised loops, so a value may differ from the NumPy formulas' in its last
bits (pinned within 8 ulps, of the row's largest entry for the gradients, 16 for the
reverse one against its formulas, by ``tests/losses/test_issue13_near_rows_numba.py``,
``test_issue13_near_gradient_numba.py`` and ``test_issue13_near_reverse_numba.py``). A
row of 10 near its teacher took 99 us (loss), 120 us (gradient) and 59 us (reverse
gradient) by the NumPy formulas (many small operations). A row equal to its teacher's,
bit for bit, is given the formulas' +0 without them.

The lean path (``_small_distill``) forms a call with such rows in one compiled call
each (:func:`near_kl_loss64`, :func:`near_forward_gradient64`,
:func:`near_reverse_gradient64`): the common path's rows and the near ones together,
then the reduction; the full path's ``NearRows`` calls :func:`near_loss64`,
:func:`near_gradient64` and :func:`near_reverse_rows64`, the same row functions, so both
paths give the same bits.

Numba caches this module (``cache=True``) keyed by this file, with ``_near_rows``'
constants, ``_far_gaps._GRADIENT_BITS``, ``_small_numba``'s ``row_sum`` and
``reduce_rows`` and ``_small_targets_numba``'s ``kl_rows64``, ``reduction_scale``,
``_all_finite``, ``tempered_difference_row`` and ``reverse_gradient_row`` compiled in:
after changing any of them, touch this file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from .._intrinsics_numba import fma as _fma
from ._centred_kl_numba import centred_kl_row
from ._distill_numba import _exact_forward_row  # (cached in: after changing it, touch this file)
from ._dominant_entry import DOMINANT as _DOMINANT
from ._far_gaps import _GRADIENT_BITS
from ._near_rows import _EXPM1_RANGE, _H, _PSI, _SERIES_X, _SERIES_Y
from ._near_rows import CANCEL_SPREAD as _CANCEL
from ._near_rows import KL_FLOOR as _KL_FLOOR
from ._near_rows import NEAR_CEILING as _NEAR_CEILING
from ._near_rows import SPREAD_FLOOR as _SPREAD_FLOOR
from ._small_numba import reduce_rows, row_sum
from ._small_targets_numba import (
    _all_finite,
    kl_rows64,
    reduction_scale,
    reverse_gradient_row,
    reverse_spread_is_small,
    tempered_difference_row,
)

__all__ = [
    "Tempered",
    "cancelling_rows64",
    "near_forward_gradient64",
    "near_gradient64",
    "near_kl_loss64",
    "near_loss64",
    "near_reverse_gradient64",
    "near_reverse_rows64",
    "reform_rows64",
    "tempered",
]


Tempered = tuple[float, float, int]
r""":math:`(T, f^2, e)`, :math:`T = f\,2^e`: the temperature as the compiled functions
take it (:func:`tempered`)."""

_H0, _H_REST = _H[0], _H[1:]
_PSI0, _PSI_REST = _PSI[0], _PSI[1:]


@numba.njit(cache=True)
def _quotient(d: float, t: float) -> tuple[float, float]:
    r""":math:`d/T` as the pair :math:`q + \mathrm{lo}`: :math:`q = \mathrm{fl}(d/T)` (the
    quotient as before) and :math:`\mathrm{lo} = (d - qT)/T`, the remainder exact by an
    FMA (``_distill_numba._quotient``'s pair, with the division's :math:`q`): within
    some :math:`2^{-104}|q|` of :math:`d/T`; lo 0 where :math:`q` is not finite."""
    q = d / t
    if not math.isfinite(q):
        return q, 0.0
    return q, _fma(-q, t, d) / t


@numba.njit(cache=True)
def _difference(a: float, b: float) -> tuple[float, float]:
    r""":math:`a - b` as the pair :math:`d + \mathrm{lo}` exactly (TwoSum); lo 0 where
    :math:`d` is not finite."""
    d = a - b
    back = d - a
    lo = (a - (d - back)) - (b + back)
    return d, lo if d - d == 0.0 else 0.0  # (a select, no branch: the loops stay lean)


@numba.njit(cache=True)
def _exp_pair(hi: float, lo: float) -> float:
    r""":math:`e^{\mathrm{hi} + \mathrm{lo}}` as :math:`e^{\mathrm{hi}}(1 + \mathrm{lo})`
    (:math:`|\mathrm{lo}|` a few ulps of hi: the next term is below :math:`2^{-90}`);
    :math:`e^{\mathrm{hi}}` where that is 0 or ``inf``."""
    e = math.exp(hi)
    return e + e * lo if e < math.inf else e


@numba.njit(cache=True)
def _horner(x: float, first: float, rest: tuple[float, ...]) -> float:
    r""":math:`\sum_k a_k x^k`, the coefficients from the highest power down."""
    total = first
    for a in rest:
        total = total * x + a
    return total


@numba.njit(cache=True)
def _times_t2(x: float, tempered: Tempered) -> float:
    r""":math:`T^2 x` as ``times_temperature_squared``: :math:`(f^2 x)\,2^{2e}`."""
    return math.ldexp(x * tempered[1], 2 * tempered[2])


@numba.njit(cache=True)
def _log_softmax(x: np.ndarray, t: float, log_p: np.ndarray, lo: np.ndarray, p: np.ndarray) -> None:
    r""":math:`\log\operatorname{softmax}(x/T)` of one row as the pairs ``log_p`` +
    ``lo``, and :math:`p = e^{\sigma}(1 + \mathrm{lo}_\sigma)/(1 + S)` into ``p``
    (:math:`S` the sum past the top class: one exponential a class, not two), by
    ``tempered_log_softmax64``'s steps (a gap past the float64 range in halves where
    :math:`T > 1`; :math:`\ell` as ``log1p`` of the sum past the first top class),
    each step's rounding kept in ``lo``: the gap :math:`x_c - m` and :math:`\sigma_c -
    \ell` by TwoSum, the quotient by :func:`_quotient`. ``exp`` of a rounded
    :math:`\log p_c` erred by :math:`|\log p_c|\,2^{-53}` relative: rows ``[0, -300]``
    beside ``[0, -290]`` at :math:`T = 2.4` (:math:`p_1 = e^{-121}`, :math:`T^2 D =
    1.8\cdot 10^{-52}`) were 87 units of :math:`2^{-53}` off (issue 13, branch
    nearrows2)."""
    top = 0
    for c in range(x.shape[0]):
        if x[c] > x[top]:
            top = c
    m = x[top]
    inv_t = 1.0 / t  # (the low parts' division: one multiplication, a relative 2^-53 of lo)
    for c in range(x.shape[0]):
        gap, gap_lo = _difference(x[c], m)
        shifted = gap / t
        rest = (_fma(-shifted, t, gap) + gap_lo) * inv_t  # (_quotient's remainder)
        if t > 1.0 and math.isinf(gap) and math.isfinite(x[c]) and math.isfinite(m):
            shifted = 2.0 * ((math.ldexp(x[c], -1) - math.ldexp(m, -1)) / t)
            rest = 0.0
        log_p[c] = shifted
        lo[c] = rest if shifted - shifted == 0.0 else 0.0
    for c in range(x.shape[0]):  # (e^sigma <= 1: no inf)
        e = math.exp(log_p[c])
        p[c] = e + e * lo[c]
    p[top] = 0.0
    others = row_sum(p)
    ell = math.log1p(others)
    p[top] = 1.0
    total = 1.0 + others
    for c in range(x.shape[0]):
        p[c] = p[c] / total
        log_p[c], rest = _difference(log_p[c], ell)
        lo[c] = lo[c] + rest


@numba.njit(cache=True)
def _row_weights(
    first: np.ndarray, t: float, log_p: np.ndarray, lo: np.ndarray, p: np.ndarray
) -> None:
    r"""``_weights`` of one row: :math:`\log p` (the pairs ``log_p`` + ``lo``) and
    :math:`p` of ``first`` (:func:`_log_softmax`: :math:`p` of the pairs' exponentials
    over their sum, not ``exp`` of :math:`\log p` again, normalised again as
    ``_weights`` does: one exponential a class), into ``log_p``, ``lo`` and ``p``."""
    _log_softmax(first, t, log_p, lo, p)


@numba.njit(cache=True)
def _row_parts(first: np.ndarray, second: np.ndarray, t: float, scratch: np.ndarray) -> float:
    r"""``_parts`` of one row: :math:`\log p` and :math:`p` of ``first`` and :math:`U`
    (the two shifts) into ``scratch``'s rows 0, 1 and 2 (row 3 a scratch row of terms,
    row 4 the low parts of :math:`\log p`); returns :math:`M = \mathrm E_p[U]`."""
    log_p, p, u, terms = scratch[0], scratch[1], scratch[2], scratch[3]
    classes = first.shape[0]
    _row_weights(first, t, log_p, scratch[4], p)
    for c in range(classes):
        difference = second[c] - first[c]  # 0 where both are -inf, or p_c = 0 (``_parts``)
        kept = difference == difference and p[c] > 0.0
        u[c] = difference if kept else 0.0
    for _ in range(2):
        for c in range(classes):
            terms[c] = p[c] * u[c]
        shift = row_sum(terms)
        for c in range(classes):
            u[c] = u[c] - shift if p[c] > 0.0 else 0.0
    for c in range(classes):
        terms[c] = p[c] * u[c]
    return row_sum(terms)


@numba.njit(cache=True)
def _row_log_mean(first: np.ndarray, second: np.ndarray, t: float, scratch: np.ndarray) -> float:
    r"""``_tempered_log_mean`` of one row: :math:`\log p`, :math:`p` and :math:`W` (:math:`D
    - D_r` less its :math:`p`-mean over the classes of :math:`|D - D_r|/T < 1/2`) into
    ``scratch``'s rows 0, 1 and 2 (row 3 the terms, row 4 the low parts of :math:`\log
    p`); returns :math:`\ell = T\log\mathrm E_p[e^{W/T}]`. Where :math:`|x| \ge 1/2`,
    :math:`x = W/T` as a pair (:func:`_quotient`)."""
    log_p, p, w, terms, lo = scratch[0], scratch[1], scratch[2], scratch[3], scratch[4]
    classes = first.shape[0]
    _row_weights(first, t, log_p, lo, p)
    top = 0
    for c in range(classes):
        difference = second[c] - first[c]
        w[c] = difference if difference == difference and p[c] > 0.0 else 0.0
        if log_p[c] > log_p[top]:
            top = c
    reference = w[top]
    for c in range(classes):
        w[c] = w[c] - reference
        inner = p[c] > 0.0 and abs(w[c] / t) < _SERIES_X
        terms[c] = p[c] * w[c] if inner else 0.0
    mean = row_sum(terms)
    for c in range(classes):
        terms[c] = p[c] if p[c] > 0.0 and abs(w[c] / t) < _SERIES_X else 0.0
    mean = mean / row_sum(terms)
    for c in range(classes):  # the series everywhere, without a branch (vectorised)
        w[c] = w[c] - mean
        x = w[c] / t
        h = _horner(x if abs(x) < _SERIES_X else 0.0, _H0, _H_REST)
        terms[c] = p[c] * (w[c] + w[c] * (x * h))
    for c in range(classes):  # T p expm1(x) where |x| >= 1/2; 0 where p is
        x = w[c] / t
        if not p[c] > 0.0:
            terms[c] = 0.0
        elif not abs(x) < _SERIES_X:
            x, x_lo = _quotient(w[c], t)
            if x <= _EXPM1_RANGE:  # expm1(x + lo) = expm1(x) + e^x lo
                m1 = math.expm1(x)
                far = p[c] * (m1 + (m1 + 1.0) * x_lo)
            else:
                far = _exp_of_sum(log_p[c], lo[c], x, x_lo) - p[c]
            terms[c] = far * t
    g = row_sum(terms)
    y = g / t
    if abs(y) < _SERIES_Y:
        return g - g * (y * _horner(y, _PSI0, _PSI_REST))
    return math.log1p(y) * t


@numba.njit(cache=True)
def _exp_of_sum(a: float, a_lo: float, b: float, b_lo: float) -> float:
    r""":math:`e^{(a + a_\mathrm{lo}) + (b + b_\mathrm{lo})}`: :math:`p\,e^x` as
    :math:`e^{\log p + x}` of the pairs :math:`\log p` and :math:`x` (the sum's rounding
    by TwoSum, :func:`_exp_pair`)."""
    total = a + b
    if not math.isfinite(total):
        return math.exp(total)
    back = total - a
    rest = (a - (total - back)) + (b - back)
    return _exp_pair(total, rest + a_lo + b_lo)


@numba.njit(cache=True)
def _row_scaled_kl(scratch: np.ndarray, m: float, tempered: Tempered, power: int) -> float:
    r""":math:`T^k D` of one row of :func:`_row_parts` (``scratch``, :math:`M`):
    ``_scaled_kl``, :math:`k` = ``power`` (2: the loss; 1: :math:`T D`, for the
    gradient). Where :math:`|x| \ge 1/2`, :math:`x = U/T` as a pair (:func:`_quotient`)
    and :math:`p\,e^x` of the pairs (:func:`_exp_of_sum`)."""
    log_p, p, u, terms, lo = scratch[0], scratch[1], scratch[2], scratch[3], scratch[4]
    t = tempered[0]
    classes = p.shape[0]
    for c in range(classes):  # the series everywhere, without a branch (vectorised)
        x = u[c] / t
        h = _horner(x if abs(x) < _SERIES_X else 0.0, _H0, _H_REST)
        terms[c] = (p[c] * u[c]) * ((u[c] if power == 2 else x) * h)
    for c in range(classes):  # the direct form where |x| >= 1/2; 0 where p is
        x = u[c] / t
        if not p[c] > 0.0:
            terms[c] = 0.0
        elif not abs(x) < _SERIES_X:
            x, x_lo = _quotient(u[c], t)
            direct = _exp_of_sum(log_p[c], lo[c], x, x_lo) - p[c] - (p[c] * x + p[c] * x_lo)
            terms[c] = _times_t2(direct, tempered) if power == 2 else direct * t
    f = row_sum(terms)
    if math.isinf(f):
        return f
    ty = m + (f / t if power == 2 else f)
    y = ty / t
    if abs(y) < _SERIES_Y:
        bracket = ty * _horner(y, _PSI0, _PSI_REST)
        kl = f + (-ty * bracket if power == 2 else -y * bracket)
    elif power == 2:
        kl = _times_t2(math.log1p(y) - m / t, tempered)
    else:
        kl = (math.log1p(y) - m / t) * t
    return kl if kl > 0.0 else 0.0


@numba.njit(cache=True)
def _row_kl(
    first: np.ndarray, second: np.ndarray, tempered: Tempered, scratch: np.ndarray
) -> float:
    r""":math:`T^2 D` of one row: ``_parts`` then ``_scaled_kl`` (power 2); ``scratch``
    five rows. A row equal to its teacher's, bit for bit, is the formula's +0 without it
    (:math:`U = M = F = 0`)."""
    if _equal(first, second):
        return 0.0
    m = _row_parts(first, second, tempered[0], scratch)
    kl = _row_scaled_kl(scratch, m, tempered, 2)
    lost = _lost_mass(scratch[1], second, tempered[0], scratch[3], scratch[2])
    if lost > 0.0:  # ``NearRows.loss``: D(p || q) = D(p || q') - log(1 - Q_B)
        kl = kl + _times_t2(-math.log1p(-lost), tempered)
    return kl


@numba.njit(cache=True)
def _lost_mass(
    p: np.ndarray, second: np.ndarray, t: float, log_q: np.ndarray, lo: np.ndarray
) -> float:
    r"""``_near_rows._lost_mass`` of one row: :math:`Q_B`, the mass of the softened
    ``second`` (its log-probabilities left in ``log_q`` + ``lo``) on the classes where
    ``p`` is 0; 0 without such a class (``log_q`` and ``lo`` then not written)."""
    if _all_positive(p):
        return 0.0
    terms = np.empty(p.shape[0])
    _log_softmax(second, t, log_q, lo, terms)
    for c in range(p.shape[0]):
        terms[c] = terms[c] if not p[c] > 0.0 else 0.0
    return row_sum(terms)


@numba.njit(cache=True)
def _row_gradient(
    rows: tuple[np.ndarray, np.ndarray], tempered: Tempered, scratch: np.ndarray, out: np.ndarray
) -> None:
    r"""``NearRows._forward_gradient`` of one row (``rows``: the teacher's scores, the
    student's logits) into ``out``: :math:`p\,a\,\operatorname{expm1}(a/T)/(a/T)`,
    :math:`a = W - \ell` (:func:`_row_log_mean`), where :math:`|a|/T < 1/2`, else :math:`T(s - p)`
    (:math:`\log s` formed only where a class needs it), the first top class's entry
    minus the others' sum where its :math:`p_r > 1/2` (``dominant_from_others``'
    order); ``scratch`` eight rows (:math:`\log s` and its low parts in rows 5 and 6). A
    row equal to its teacher's is the formula's +0 without it."""
    first, second = rows
    t = tempered[0]
    if _equal(first, second):
        out[:] = 0.0
        return
    if _centring_cancels(first, second) and (
        _exact_forward_row(second, first, first.max(), t, t, out, scratch[:2]) >= 0.0
    ):
        return  # (issue 13, branch distfwd1: W - ell cancelled, W of rounded z - v)
    ell = _row_log_mean(first, second, t, scratch)
    log_p, p, w, log_s = scratch[0], scratch[1], scratch[2], scratch[5]
    lo, s_lo = scratch[4], scratch[6]
    lost = _lost_mass(p, second, t, log_s, s_lo)  # (log_s formed where a p_c is 0)
    softened = not _all_positive(p)
    for c in range(first.shape[0]):
        if not p[c] > 0.0:  # T s_c where t_c = 0 (+0 masked on both sides)
            out[c] = _exp_pair(log_s[c], s_lo[c]) * t
            continue
        a = w[c] - ell
        q = a / t
        if abs(q) < _SERIES_X:
            out[c] = p[c] * (a * (math.expm1(q) / q if q != 0.0 else 1.0))
            if lost > 0.0:  # T(s - t) = T(s' - t) - T Q_B s' (``NearRows``)
                s_c = _exp_of_sum(log_s[c], s_lo[c], -math.log1p(-lost), 0.0)
                out[c] = out[c] - (lost * t) * s_c
            continue
        if not softened:
            _log_softmax(second, t, log_s, s_lo, scratch[7])
            softened = True
        out[c] = (_exp_pair(log_s[c], s_lo[c]) - _exp_pair(log_p[c], lo[c])) * t
    top = 0  # (``NearRows``: a dominant class's a_r cancels; minus the others' sum)
    for c in range(first.shape[0]):
        if log_p[c] > log_p[top]:
            top = c
    if p[top] > _DOMINANT:
        out[top] = 0.0
        out[top] = -row_sum(out)


@numba.njit(cache=True)
def _all_positive(p: np.ndarray) -> bool:
    """Whether every entry of ``p`` is above 0 (a count, as :func:`_equal`)."""
    absent = 0
    for c in range(p.shape[0]):
        absent += not p[c] > 0.0
    return absent == 0


@numba.njit(cache=True)
def _row_reverse_gradient(
    rows: tuple[np.ndarray, np.ndarray], t: float, scratch: np.ndarray, out: np.ndarray
) -> None:
    r"""``NearRows``' reverse gradient of one row (``rows``: the student's logits
    :math:`z`, the teacher's scores :math:`x`) into ``out``: ``_far_gaps``'
    ``reverse_distillation_gradient64``, :math:`s_j(D_j - \sum_c s_c D_c)` with
    :math:`s = \exp(\log\operatorname{softmax}(z/T))` (:func:`_log_softmax`, into
    ``scratch``'s row 0), :math:`D = d - d_r`, :math:`d = z - x`, :math:`r` the first
    top class of :math:`s`, every entry scaled by :math:`2^{-4}` first (and the products
    back) in a row with an entry past :math:`2^{1018}`; 0 where :math:`s_j = 0`. A row
    equal to its teacher's, bit for bit, is the formula's +0 (:math:`D = 0`) without it.
    ``scratch``: rows 0 to 3 (:math:`\log s`, the gaps, the low parts of :math:`\log s`,
    :math:`s`)."""
    z, x = rows
    if _equal(z, x):
        out[:] = 0.0
        return
    s, gaps, lo = scratch[3], scratch[1], scratch[2]
    classes = z.shape[0]
    _log_softmax(z, t, scratch[0], lo, s)
    wide, top = 0.0, 0
    for c in range(classes):
        wide = max(wide, abs(z[c]), abs(x[c]))
        if s[c] > s[top]:
            top = c
    bits = _GRADIENT_BITS if wide >= 2.0**1018 else 0
    reference = math.ldexp(z[top], -bits) - math.ldexp(x[top], -bits)
    for c in range(classes):
        gaps[c] = (math.ldexp(z[c], -bits) - math.ldexp(x[c], -bits)) - reference
        out[c] = s[c] * gaps[c] if s[c] != 0.0 else 0.0
    mean = row_sum(out)
    for c in range(classes):
        out[c] = math.ldexp(s[c] * (gaps[c] - mean), bits) if s[c] != 0.0 else 0.0


@numba.njit(cache=True)
def _equal(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether two rows are equal entry for entry (a count, not a loop that stops: it
    vectorises)."""
    unequal = 0
    for c in range(first.shape[0]):
        unequal += first[c] != second[c]
    return unequal == 0


@numba.njit(cache=True)
def _formable(first: np.ndarray, second: np.ndarray) -> bool:
    """``rows_to_form``'s test of one row (``_near_rows.formable``): every difference
    finite (:math:`x - x = 0` exactly where :math:`x` is) or both sides ``-inf``, one
    finite (counts, as :func:`_equal`)."""
    lost = kept = 0
    for c in range(first.shape[0]):
        difference = second[c] - first[c]
        finite = difference - difference == 0.0
        kept += finite
        lost += not (finite or (first[c] == -math.inf and second[c] == -math.inf))
    return lost == 0 and kept > 0


@numba.njit(cache=True)
def _near_loss_rows(first: np.ndarray, second: np.ndarray, tempered: Tempered) -> np.ndarray:
    """:func:`_row_kl` of each row of C-contiguous float64 ``first`` and ``second``."""
    rows, classes = first.shape
    out = np.empty(rows)
    scratch = np.empty((5, classes))
    for r in range(rows):
        out[r] = _row_kl(first[r], second[r], tempered, scratch)
    return out


def tempered(temperature: float) -> Tempered:
    r""":math:`(T, f^2, e)` with :math:`T = f\,2^e` (``math.frexp``): the temperature as
    the compiled functions here take it (:math:`T^2 x` formed as :math:`(f^2 x)\,2^{2e}`)."""
    frac, exponent = math.frexp(temperature)
    return float(temperature), frac * frac, exponent


def near_loss64(
    student: np.ndarray, teacher: np.ndarray, temperature: float, *, forward: bool
) -> np.ndarray:
    r""":math:`T^2 D` per row of float64 rows (batch x classes, finite differences) of
    the student's logits and the teacher's scores: ``NearRows.loss`` compiled (module
    docstring); :math:`D(t\,\|\,s)` where ``forward``, else :math:`D(s\,\|\,t)`."""
    first, second = (teacher, student) if forward else (student, teacher)
    return _rows_of(_near_loss_rows, first, second, temperature)[..., 0]


def near_gradient64(student: np.ndarray, teacher: np.ndarray, temperature: float) -> np.ndarray:
    r"""The forward gradient :math:`T(s - t)` of float64 rows (batch x classes, finite
    differences) of the student's logits and the teacher's scores: ``NearRows``'
    forward gradient compiled (:func:`_row_gradient`, by :func:`near_forward_gradient64`
    given no softened rows: every row formed)."""
    return _rows_of(_every_gradient_row, teacher, student, temperature)


def _every_gradient_row(first: np.ndarray, second: np.ndarray, tempered: Tempered) -> np.ndarray:
    """:func:`_row_gradient` of every row of C-contiguous float64 ``first`` and ``second``
    (one compiled function for both paths: each costs a compile of the formula)."""
    out = np.empty(first.shape)
    no_rows = np.empty((0, first.shape[1]))
    no_flags = np.empty(0, dtype=np.bool_)
    near_forward_gradient64(out, no_rows, (first, second), tempered, 0, 0.0, no_flags)
    return out


def near_reverse_rows64(student: np.ndarray, teacher: np.ndarray, temperature: float) -> np.ndarray:
    r"""The reverse gradient :math:`s \odot (d - \bar d)` of float64 rows (batch x
    classes, finite differences) of the student's logits and the teacher's scores:
    ``NearRows``' reverse gradient compiled (:func:`_row_reverse_gradient`, by
    :func:`near_reverse_gradient64` given no softened rows: every row formed)."""
    return _rows_of(_every_reverse_row, student, teacher, temperature)


def _every_reverse_row(first: np.ndarray, second: np.ndarray, tempered: Tempered) -> np.ndarray:
    """:func:`_row_reverse_gradient` of every row of C-contiguous float64 ``first`` (the
    student's logits) and ``second`` (the teacher's scores), by the lean path's entry."""
    out = np.empty(first.shape)
    none = np.empty((0, first.shape[1]))
    near_reverse_gradient64(out, none, none, (first, second), tempered[0], 0, 0.0)
    return out


def _rows_of(
    rows: Callable[..., np.ndarray], first: np.ndarray, second: np.ndarray, temperature: float
) -> np.ndarray:
    """``rows(first, second, tempered(T))`` of float64 rows in any batch shape, in that
    shape (classes last: keepdims for per-row values)."""
    classes = first.shape[-1]
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        out = rows(
            np.ascontiguousarray(first, dtype=np.float64).reshape(-1, classes),
            np.ascontiguousarray(second, dtype=np.float64).reshape(-1, classes),
            tempered(temperature),
        )
    return out.reshape((*first.shape[:-1], -1))


# ---------------------------------------------------- the lean path's near rows (issue 13)


@numba.njit(cache=True)
def near_kl_loss64(
    log_p: np.ndarray,
    log_q: np.ndarray,
    p: np.ndarray,
    factor: float,
    scores: tuple[np.ndarray, np.ndarray],
    tempered: Tempered,
    given: tuple[np.ndarray, np.ndarray],
    reduce_with: Any,
) -> tuple[bool, float]:
    r"""The lean loss (``_small_distill``) where ``kl_loss64`` handed rows on: the common
    path's :math:`T^2 D` per row (``kl_rows64``, ``factor`` :math:`T^2` or 1.0), the rows
    whose KL is below ``KL_FLOOR`` and formable (finite ``second - first``, of
    ``scores``: the raw scores of the KL's first and second sides) by :func:`_row_kl`,
    those below ``NEAR_CEILING`` by ``_centred_kl_numba.centred_kl_row``, then
    ``reduce_rows``; ``(False, 0.0)`` where no row is below the ceiling (the call was
    handed on for another reason: the full path's). ``given``: empty, or per row
    :math:`(a, b)` making a row so formed :math:`a(D + b)` (a teacher taken as it
    is, ``_distill._as_given``: :math:`(e^L, L)` forward, :math:`(1, -L)` reverse)."""
    first, second = scores
    scale, shift = given
    rows = kl_rows64(log_p, log_q, p, 1.0)
    scratch = np.empty((5, first.shape[1]))
    blocks = np.empty((3, 512))  # (centred_kl_row's)
    found = False
    for i in range(rows.shape[0]):
        kl = rows[i]
        if kl < _NEAR_CEILING:
            found = True
            if _formable(first[i], second[i]):
                if kl < _KL_FLOOR:
                    rows[i] = _row_kl(first[i], second[i], tempered, scratch)
                else:
                    rows[i] = _times_t2(
                        centred_kl_row(first[i], second[i], tempered[0], blocks), tempered
                    )
                if scale.shape[0] > 0:
                    rows[i] = scale[i] * (rows[i] + shift[i])
                continue
        if factor != 1.0:
            rows[i] = factor * kl
    if not found:
        return False, 0.0
    return reduce_rows(rows, reduce_with)


@numba.njit(cache=True)
def near_forward_gradient64(
    s: np.ndarray,
    teacher: np.ndarray,
    scores: tuple[np.ndarray, np.ndarray],
    tempered: Tempered,
    reduction: int,
    log_base: float,
    kl_small: np.ndarray,
) -> bool:
    r"""The lean forward gradient (``_small_distill``) where ``tempered_difference64``
    handed rows on, into ``s`` (the softened student; ``teacher`` the softened
    teacher): :math:`T(s - t)` (the product only for :math:`T \ne 1`), the rows that
    ``spread_is_small`` flags, or ``kl_small`` (per row: a KL below ``KL_FLOOR``;
    ``_near_rows.forward_rows_flagged``), and that are formable (``scores``: the
    teacher's scores, the student's logits) by :func:`_row_gradient`, times
    ``reduction_scale``; False where a value is not finite. Where no row is flagged
    (``tempered_difference64``'s test is looser), the common path's values. A
    ``teacher`` of no rows: every row of ``s`` formed by :func:`_row_gradient` (the
    full path's rows: ``near_gradient64``), reduction 0 (``'none'``) giving a scale of 1."""
    first, second = scores
    n, classes = s.shape
    scale = reduction_scale(n, reduction, log_base)
    scratch = np.empty((8, classes))
    every = teacher.shape[0] == 0
    t = tempered[0]
    for i in range(n):
        row = s[i]
        flagged = every or kl_small[i] or _spread_is_small(row, teacher[i])
        if flagged and _formable(first[i], second[i]):
            _row_gradient((first[i], second[i]), tempered, scratch, row)
            _scaled(row, scale)
        else:
            tempered_difference_row(row, teacher[i], t, scale)
    return _all_finite(s)


@numba.njit(cache=True)
def near_reverse_gradient64(
    s: np.ndarray,
    log_s: np.ndarray,
    log_t: np.ndarray,
    scores: tuple[np.ndarray, np.ndarray],
    temperature: float,
    reduction: int,
    log_base: float,
) -> bool:
    r"""The lean reverse gradient (``_small_distill``) where ``reverse_gradient64`` handed
    rows on, into ``s`` (NumPy's exp of ``log_s``; ``log_t`` the softened teacher): the
    rows whose KL (``kl_rows64``) is below ``KL_FLOOR`` or whose spread is small
    (``reverse_spread_is_small``: ``_near_rows.forward_rows_flagged``) and that are formable
    (``scores``: the student's logits, the teacher's scores) by
    :func:`_row_reverse_gradient`, the others by ``reverse_gradient64``'s formula
    :math:`T\,s \odot (\log s - \log t - D)`, times ``reduction_scale``; False where
    no row is flagged (the call was handed on for another reason: the full
    path's) or a value is not finite. A ``log_s`` of no rows: every row of ``s``
    formed by :func:`_row_reverse_gradient` (the full path's rows:
    ``near_reverse_rows64``), reduction 0 (``'none'``) giving a scale of 1."""
    first, second = scores
    n, classes = s.shape
    every = log_s.shape[0] == 0
    kl = np.zeros(n) if every else kl_rows64(log_s, log_t, s, 1.0)
    scale = reduction_scale(n, reduction, log_base)
    scratch = np.empty((4, classes))
    found = every
    for i in range(n):
        row = s[i]
        near = kl[i] < _KL_FLOOR or (
            not every and reverse_spread_is_small(row, log_s[i], log_t[i], kl[i])
        )
        found = found or near
        if every or (near and _formable(first[i], second[i])):
            _row_reverse_gradient((first[i], second[i]), temperature, scratch, row)
            _scaled(row, scale)
        else:
            reverse_gradient_row(row, log_s[i], log_t[i], kl[i], temperature, scale)
    return found and _all_finite(s)


@numba.njit(cache=True)
def _scaled(row: np.ndarray, scale: float) -> None:
    """``row`` times ``scale``, in place (``reduction_scale``'s factor)."""
    for c in range(row.shape[0]):
        row[c] = row[c] * scale


@numba.njit(cache=True)
def _spread_is_small(s: np.ndarray, teacher: np.ndarray) -> bool:
    r"""``_near_rows.spread_is_small`` of one row: :math:`\max_c|s_c - t_c| <`
    ``SPREAD_FLOOR`` :math:`\max_c t_c`; False where a difference or :math:`t_c` is NaN
    (as NumPy's maxima propagate it)."""
    spread, top = 0.0, -math.inf
    for c in range(s.shape[0]):
        difference = s[c] - teacher[c]
        if math.isnan(difference) or math.isnan(teacher[c]):
            return False
        spread = max(spread, abs(difference))
        top = max(top, teacher[c])
    return spread < _SPREAD_FLOOR * top


# ------------------------------------ rows whose s - t cancels (issue 13, branch distfwd1)


@numba.njit(cache=True)
def _centring_cancels(first: np.ndarray, second: np.ndarray) -> bool:
    r"""Whether :math:`W = D - D_r` (:math:`D = \text{second} - \text{first}`, :math:`r`
    the first top class of ``first``; over the classes of a finite :math:`D`) is below
    a quarter of :math:`D` at every class: :math:`\max_c |W_c| < \max_c |D_c|/4`,
    where :func:`_row_log_mean`'s :math:`W` of the rounded :math:`D` errs by more than
    four units (a row of two classes at :math:`T = 2`: 449), and
    ``_distill_numba._exact_forward_row`` forms the row (issue 13, branch distfwd1;
    elsewhere the formula before, a few roundings fewer: ``NearRows``' twin,
    ``_near_rows._centring_cancels``)."""
    top = 0
    for c in range(first.shape[0]):
        if first[c] > first[top]:
            top = c
    dr = second[top] - first[top]
    big, wide = 0.0, 0.0
    for c in range(first.shape[0]):
        d = second[c] - first[c]
        if math.isfinite(d):
            big = max(big, abs(d))
            wide = max(wide, abs(d - dr))
    return wide < 0.25 * big


@numba.njit(cache=True)
def cancelling_rows64(s: np.ndarray, teacher: np.ndarray) -> np.ndarray:
    r"""Per row of the softened student ``s`` and teacher (N x C), whether
    :math:`\max_c |s_c - t_c| <` ``_near_rows.CANCEL_SPREAD`` :math:`\max_c t_c` (False where a
    value is NaN): the lean path's rows for :func:`reform_rows64`, the full path's
    (``_distill._cancelling_rows``) by the same comparisons."""
    n, classes = s.shape
    out = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        spread, top = 0.0, -math.inf
        for c in range(classes):
            spread = max(spread, abs(s[i, c] - teacher[i, c]))
            top = max(top, teacher[i, c])
        out[i] = spread < _CANCEL * top
    return out


@numba.njit(cache=True)
def reform_rows64(
    out: np.ndarray,
    rows: np.ndarray,
    scores: tuple[np.ndarray, np.ndarray],
    tempered: Tempered,
    reduction: int,
    log_base: float,
) -> bool:
    r"""The lean forward gradient's ``rows`` (:func:`cancelling_rows64`) that are formable
    formed again into ``out`` by :func:`_row_gradient` (``scores``: the teacher's scores,
    the student's logits), times ``reduction_scale``, as the full path forms them
    (``NearRows``); False where a value is not finite."""
    first, second = scores
    n, classes = out.shape
    scale = reduction_scale(n, reduction, log_base)
    scratch = np.empty((8, classes))
    for i in range(n):
        if rows[i] and _formable(first[i], second[i]):
            _row_gradient((first[i], second[i]), tempered, scratch, out[i])
            _scaled(out[i], scale)
    return _all_finite(out)
