r"""``_near_rows.NearRows``' loss compiled for float64 NumPy rows (issue 13, Numba).

The formula of ``_near_rows`` (its docstring derives it), one row at a time with no
temporary arrays but two of the row's length: :math:`\log p` by
``_far_gaps.tempered_log_softmax64``'s steps, the two shifts of ``_parts`` and
:math:`T^2 D` of ``_scaled_kl`` (the Horner series ``_H`` and ``_PSI``, the switches
``_SERIES_X`` and ``_SERIES_Y``, :math:`T^2 x` as ``times_temperature_squared`` forms
it). Row sums in NumPy's pairwise order (``_small_numba.row_sum``); ``exp``, ``log``
and ``log1p`` are libm's, not NumPy's vectorised loops, so a value may differ from the
NumPy formulas' in its last bits (pinned within 8 ulps by
``tests/losses/test_issue13_near_rows_numba.py``). A row of 10 near its teacher took
99 us by the NumPy formulas (many small operations).

Numba caches this module (``cache=True``) keyed by this file, with ``_near_rows``'
constants and ``_small_numba.row_sum`` compiled in: after changing either, touch this
file.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._near_rows import _H, _PSI, _SERIES_X, _SERIES_Y
from ._small_numba import row_sum

__all__ = ["near_loss64"]

_H0, _H_REST = _H[0], _H[1:]
_PSI0, _PSI_REST = _PSI[0], _PSI[1:]


@numba.njit(cache=True)
def _horner(x: float, first: float, rest: tuple[float, ...]) -> float:
    r""":math:`\sum_k a_k x^k`, the coefficients from the highest power down."""
    total = first
    for a in rest:
        total = total * x + a
    return total


@numba.njit(cache=True)
def _times_t2(x: float, frac_squared: float, exponent: int) -> float:
    r""":math:`T^2 x` as ``times_temperature_squared``: :math:`(f^2 x)\,2^{2e}`."""
    return math.ldexp(x * frac_squared, 2 * exponent)


@numba.njit(cache=True)
def _log_softmax(x: np.ndarray, t: float, log_p: np.ndarray) -> None:
    r""":math:`\log\operatorname{softmax}(x/T)` of one row into ``log_p``, by
    ``tempered_log_softmax64``'s steps (a gap past the float64 range in halves where
    :math:`T > 1`; :math:`\ell` as ``log1p`` of the sum past the first top class)."""
    top = 0
    for c in range(x.shape[0]):
        if x[c] > x[top]:
            top = c
    m = x[top]
    for c in range(x.shape[0]):
        gap = x[c] - m
        shifted = gap / t
        if t > 1.0 and math.isinf(gap) and math.isfinite(x[c]) and math.isfinite(m):
            shifted = 2.0 * ((math.ldexp(x[c], -1) - math.ldexp(m, -1)) / t)
        log_p[c] = shifted
    terms = np.exp(log_p)
    terms[top] = 0.0
    ell = math.log1p(row_sum(terms))
    for c in range(x.shape[0]):
        log_p[c] = log_p[c] - ell


@numba.njit(cache=True)
def _row_kl(
    first: np.ndarray,
    second: np.ndarray,
    t: float,
    frac_squared: float,
    exponent: int,
    log_p: np.ndarray,
    p: np.ndarray,
    u: np.ndarray,
) -> float:
    r""":math:`T^2 D` of one row: ``_parts`` then ``_scaled_kl`` (power 2); ``log_p``,
    ``p`` and ``u`` scratch rows."""
    classes = first.shape[0]
    _log_softmax(first, t, log_p)
    for c in range(classes):
        p[c] = math.exp(log_p[c])
    total = row_sum(p)
    log_total = math.log(total)
    for c in range(classes):
        p[c] = p[c] / total
        log_p[c] = log_p[c] - log_total
        u[c] = second[c] - first[c]
    terms = np.empty(classes)
    for _ in range(2):
        for c in range(classes):
            terms[c] = p[c] * u[c]
        shift = row_sum(terms)
        for c in range(classes):
            u[c] = u[c] - shift
    for c in range(classes):
        terms[c] = p[c] * u[c]
    m = row_sum(terms)
    for c in range(classes):  # the series everywhere, without a branch (vectorised)
        x = u[c] / t
        h = _horner(x if abs(x) < _SERIES_X else 0.0, _H0, _H_REST)
        terms[c] = (p[c] * u[c]) * (u[c] * h)
    for c in range(classes):  # the direct form where |x| >= 1/2; 0 where p is
        x = u[c] / t
        if not log_p[c] > -math.inf:
            terms[c] = 0.0
        elif not abs(x) < _SERIES_X:
            direct = math.exp(log_p[c] + x) - p[c] - p[c] * x
            terms[c] = _times_t2(direct, frac_squared, exponent)
    f = row_sum(terms)
    if math.isinf(f):
        return f
    ty = m + f / t
    y = ty / t
    if abs(y) < _SERIES_Y:
        kl = f + -ty * (ty * _horner(y, _PSI0, _PSI_REST))
    else:
        kl = _times_t2(math.log1p(y) - m / t, frac_squared, exponent)
    return kl if kl > 0.0 else 0.0


@numba.njit(cache=True)
def _near_loss_rows(
    first: np.ndarray, second: np.ndarray, t: float, frac_squared: float, exponent: int
) -> np.ndarray:
    """:func:`_row_kl` of each row of C-contiguous float64 ``first`` and ``second``."""
    rows, classes = first.shape
    out = np.empty(rows)
    log_p, p, u = np.empty(classes), np.empty(classes), np.empty(classes)
    for r in range(rows):
        out[r] = _row_kl(first[r], second[r], t, frac_squared, exponent, log_p, p, u)
    return out


def near_loss64(
    student: np.ndarray, teacher: np.ndarray, temperature: float, *, forward: bool
) -> np.ndarray:
    r""":math:`T^2 D` per row of float64 rows (batch x classes, finite differences) of
    the student's logits and the teacher's scores: ``NearRows.loss`` compiled (module
    docstring); :math:`D(t\,\|\,s)` where ``forward``, else :math:`D(s\,\|\,t)`."""
    first, second = (teacher, student) if forward else (student, teacher)
    classes = first.shape[-1]
    frac, exponent = math.frexp(temperature)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        out = _near_loss_rows(
            np.ascontiguousarray(first, dtype=np.float64).reshape(-1, classes),
            np.ascontiguousarray(second, dtype=np.float64).reshape(-1, classes),
            float(temperature),
            frac * frac,
            exponent,
        )
    return out.reshape(first.shape[:-1])
