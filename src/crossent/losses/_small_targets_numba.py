r"""Compiled parts of the small soft-target and distillation calls (issue 13, Numba).

The float64 hybrid of ``_softmax_small`` (its docstring says why and how) extended to
probability targets and to distillation, for float64 inputs (float32 ones are computed
on float64 copies, the result rounded once, issue 13): these functions do the generic
path's arithmetic in its order, and
the caller (``_small_targets``, ``_small_distill``) runs NumPy's own np.exp, np.log1p
and np.log between them on the values the generic path gives those ufuncs. What the
label hybrid already compiles is called, not repeated: ``shift_rows64`` (screening,
maximum, shift, temperature), ``rest_of_rows64`` (the ties and the row sum of
``log_sum_exp_shifted``), ``subtract_rows64`` (:math:`\sigma - \ell`), the row sums in
NumPy's pairwise order, and ``reduce_rows`` for the reduction.

A target row's sum is still checked within the tolerance of the caller's dtype.

Each function returns False, having written nothing the caller hands back, where the
full path would raise, warn or give a value that is not finite; the caller then takes
the full path, which does what it does.

Numba caches these functions (``cache=True``) with what they call from ``_small_numba``
compiled in, keyed by this file: after editing ``_small_numba`` in a source checkout,
touch this file too (or clear ``__pycache__``).

Pinned bit for bit by ``tests/losses/test_issue13_small_targets.py``,
``tests/losses/test_issue13_small_distill.py`` and
``tests/losses/test_issue13_small_targets_float32.py``.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from ._dominant_entry import DOMINANT as _DOMINANT
from ._kernel_inputs import HALF_LOG as _HALF_LOG
from ._near_rows import KL_FLOOR as _KL_FLOOR
from ._near_rows import NEAR_CEILING as _NEAR_CEILING
from ._near_rows import NEAR_SPREAD as _NEAR_SPREAD
from ._near_rows import SPREAD_FLOOR as _SPREAD_FLOOR
from ._small_numba import MEAN as _MEAN
from ._small_numba import REST as _REST
from ._small_numba import TOP as _TOP
from ._small_numba import reduce_rows, rest_of_rows64, row_sum, shift_rows64

NEEDS_TOP_EXPM1 = 2
r"""What :func:`target_gradient64` returns, having written nothing, where it needs the
expm1 of :math:`-\ell` that it was not given (a row with :math:`p_c > 1/2`)."""

_CONFIDENT_REST = 1.0 + 2.0**-20
r"""A row whose rest (``rows[REST]``, :math:`\ell = \operatorname{log1p}(\text{rest})`) is
below this may have :math:`p_c > 1/2`: that needs :math:`-\ell >` :data:`HALF_LOG`, so
rest below 1 (the margin covers log1p's rounding; a row flagged wrongly costs an expm1
whose value goes unused)."""

_LOWEST = -1.7976931348623157e308
"""The most negative finite float64 (a constant: ``np.finfo`` costs Numba seconds to
compile)."""

__all__ = [
    "A_ROW",
    "B_ROW",
    "NEEDS_TOP_EXPM1",
    "kl_loss64",
    "kl_rows64",
    "reduction_scale",
    "reverse_gradient64",
    "reverse_gradient_row",
    "reverse_spread_is_small",
    "screen_distributions64",
    "shift_logits64",
    "shift_pair64",
    "shift_targets64",
    "target_gradient64",
    "target_loss64",
    "target_rows64",
    "tempered_difference64",
    "tempered_difference_row",
]

#: Rows of the per-row buffer ``rows`` (6 x N) of the soft-target functions past those
#: of the label hybrid (``TOP``, ``LABEL``, ``REST``, ``SUM``): :math:`A` and :math:`B`.
A_ROW, B_ROW = 4, 5


@numba.njit(cache=True)
def screen_distributions64(p: np.ndarray, tolerance: float) -> bool:
    r"""Whether every row of ``p`` (N x C) surely passes ``check_distribution``: entries
    in :math:`[0, 1]` (NaN fails) and :math:`|\sum_c p_c - 1| \le` ``tolerance``, the sum
    in NumPy's pairwise order and in float64 (of a float32 ``p`` too) as the check forms it."""
    n, classes = p.shape
    row = np.empty(classes)  # (np.add.reduce(p, -1, np.float64) sums a float64 copy)
    for i in range(n):
        for c in range(classes):
            value = p[i, c]
            if not (value >= 0.0 and value <= 1.0):
                return False
            row[c] = value
        total = row_sum(row)
        if not (total - 1.0 <= tolerance and 1.0 - total <= tolerance):
            return False
    return True


@numba.njit(cache=True)
def shift_logits64(
    z: np.ndarray, temperature: float, shifted: np.ndarray, rows: np.ndarray
) -> bool:
    r"""``shift_rows64`` of the logits alone (labels 0): :math:`\sigma = (z - m)/T` into
    ``shifted`` and :math:`m/T` into ``rows[TOP]``; False when a row is suspect."""
    return shift_rows64(z, np.zeros(z.shape[0], dtype=np.int64), temperature, shifted, rows)


@numba.njit(cache=True)
def shift_targets64(
    z: np.ndarray,
    targets: np.ndarray,
    tolerance: float,
    temperature: float,
    shifted: np.ndarray,
    rows: np.ndarray,
) -> bool:
    """:func:`screen_distributions64` of ``targets``, then :func:`shift_logits64` of ``z``."""
    return screen_distributions64(targets, tolerance) and shift_logits64(
        z, temperature, shifted, rows
    )


@numba.njit(cache=True)
def _smoothed(t: float, keep: float, spread: float, smooth: bool) -> float:
    r""":math:`\tilde t = (1-\varepsilon)\,t + \varepsilon/C` as ``target_terms`` forms it
    (``keep * targets + spread``), or ``t`` without smoothing."""
    return keep * t + spread if smooth else t


@numba.njit(cache=True)
def target_rows64(
    terms: np.ndarray,
    shifted: np.ndarray,
    targets: np.ndarray,
    rows: np.ndarray,
    keep: float,
    spread: float,
    smooth: bool,
) -> bool:
    r"""``rest_of_rows64`` (``terms``: NumPy's exp of ``shifted``), then ``target_terms``
    without class weights: :math:`A = \sum_c \tilde t_c` into ``rows[A_ROW]`` and
    :math:`B = \sum_c \tilde t_c\,\sigma_c` into ``rows[B_ROW]``, each in NumPy's
    pairwise order; a term of weight 0 is ``weighted_term``'s :math:`\tilde t_c \cdot 0`
    (absent even where :math:`\sigma_c = -\infty`). Returns whether a row may have
    :math:`p_c > 1/2` (its rest below ``_CONFIDENT_REST``): the gradient's caller forms
    the expm1 that :func:`target_gradient64` needs for it only then (issue 13)."""
    rest_of_rows64(terms, shifted, rows, False)
    n, classes = targets.shape
    confident = False
    for i in range(n):
        if rows[_REST, i] < _CONFIDENT_REST:
            confident = True
    weights = np.empty(classes, dtype=targets.dtype)
    products = np.empty(classes, dtype=targets.dtype)
    for i in range(n):
        for c in range(classes):
            w = _smoothed(targets[i, c], keep, spread, smooth)
            weights[c] = w
            products[c] = w * (shifted[i, c] if w != 0.0 else 0.0)
        rows[A_ROW, i] = row_sum(weights)
        rows[B_ROW, i] = row_sum(products)
    return confident


@numba.njit(cache=True)
def target_loss64(
    rows: np.ndarray, ell: np.ndarray, z_loss: float, reduce_with: Any
) -> tuple[bool, float]:
    r"""``row_loss`` of probability targets, :math:`A\ell - B + \lambda\,\mathrm{LSE}^2`
    (every example weight 1, so ``z_loss * omega`` is :math:`\lambda`), then
    ``_small_numba.reduce_rows`` with ``reduce_with`` (float64)."""
    n = ell.shape[0]
    loss = np.empty(n)
    for i in range(n):
        value = rows[A_ROW, i] * ell[i] - rows[B_ROW, i]
        if z_loss != 0.0:
            lse = rows[_TOP, i] + ell[i]
            value = value + z_loss * (lse * lse)
        loss[i] = value
    return reduce_rows(loss, reduce_with)


@numba.njit(cache=True)
def target_gradient64(
    p: np.ndarray,
    targets: np.ndarray,
    rows: np.ndarray,
    ell: np.ndarray,
    keep: float,
    spread: float,
    smooth: bool,
    z_loss: float,
    temperature: float,
    reduction: int,
    log_base: float,
    log_p: np.ndarray,
    top_expm1: np.ndarray,
) -> int:
    r"""The soft-target gradient from :math:`p` (NumPy's exp), in place:
    :math:`((c_i p_i - \tilde t_i)/T)\,s` with :math:`c_i = A_i + 2\lambda\,\mathrm{LSE}_i`
    (``p_coefficient``, :math:`\omega = 1`), the division only for :math:`T \ne 1`
    (``chain_rule``) and :math:`s` :func:`reduction_scale`. The entry with :math:`p_c >
    1/2` (``log_p``, :math:`\sigma - \ell`, above :data:`HALF_LOG`: the row's maximum,
    :math:`\log p_c = -\ell`) as :math:`c_i \operatorname{expm1}(-\ell_i) + ((A_i -
    \tilde t_c) + 2\lambda\mathrm{LSE}_i)` (``top_expm1``: NumPy's expm1 of
    :math:`-\ell`), as the full path's ``_exact_label_entries`` (issue 13).

    ``top_expm1`` empty: not formed (NumPy's expm1 is most of a microsecond a call; the
    caller forms it where :func:`target_rows64` flagged a row). Where a row has
    :math:`-\ell_i >` :data:`HALF_LOG` all the same (every entry :math:`\log p_c \le
    -\ell_i`: the only rows that can have one), it returns :data:`NEEDS_TOP_EXPM1` having
    written nothing, and the caller calls again with it. Else 1, or 0 where a value is
    not finite."""
    n, classes = p.shape
    if top_expm1.shape[0] == 0:
        for i in range(n):
            if -ell[i] > _HALF_LOG:
                return NEEDS_TOP_EXPM1
    scale = reduction_scale(n, reduction, log_base)
    factor = 2.0 * z_loss  # (2 * z_loss) * omega, omega = 1
    for i in range(n):
        coef = rows[A_ROW, i]  # (formed row by row: no array of them, no allocation)
        if z_loss != 0.0:
            coef = coef + factor * (rows[_TOP, i] + ell[i])
        for c in range(classes):
            t = _smoothed(targets[i, c], keep, spread, smooth)
            if log_p[i, c] > _HALF_LOG:
                gap = rows[A_ROW, i] - t
                if z_loss != 0.0:
                    gap = gap + factor * (rows[_TOP, i] + ell[i])
                value = coef * top_expm1[i] + gap
            else:
                value = coef * p[i, c] - t
            p[i, c] = _tempered(value, temperature) * scale
    return 1 if _all_finite(p) else 0


@numba.njit(cache=True)
def reduction_scale(n: int, reduction: int, log_base: float) -> float:
    r"""``scale_for_reduction`` of ``n`` rows of weight 1 (float64): for ``'mean'``
    ``1.0 / n`` and its division by :math:`\ln b`; else ``1.0`` or ``1.0 / ln b``
    (``log_base`` 0.0: nats)."""
    if reduction == _MEAN:
        scale = 1.0 / float(n)
        return scale / log_base if log_base != 0.0 else scale
    return 1.0 / log_base if log_base != 0.0 else 1.0


@numba.njit(cache=True)
def _tempered(value: float, temperature: float) -> float:
    """``chain_rule``'s ``grad / T``, skipped at :math:`T = 1` as there."""
    return value / temperature if temperature != 1.0 else value


@numba.njit(cache=True)
def _all_finite(values: np.ndarray) -> bool:
    """Whether every value is finite (the full path may warn, or not, on the others)."""
    return bool(np.all(np.isfinite(values)))


@numba.njit(cache=True)
def _floored(value: Any, lowest: Any) -> Any:
    """``np.maximum(value, lowest)`` of ``_numerics._floored``, ``lowest`` the most negative
    finite number of the dtype (no NaN reaches here)."""
    return value if value > lowest else lowest


@numba.njit(cache=True)
def shift_pair64(
    z: np.ndarray,
    z_temperature: float,
    v: np.ndarray,
    v_temperature: float,
    shifted: np.ndarray,
    rows: np.ndarray,
) -> bool:
    r""":func:`shift_logits64` of ``z`` (N x C) into the first N rows of ``shifted`` (2N x
    C) and columns of ``rows`` (4 x 2N), and of ``v`` into the others, each at its own
    temperature: one np.exp and one np.log1p then serve both (elementwise, so their
    values are those of two calls)."""
    n = z.shape[0]
    return shift_logits64(z, z_temperature, shifted[:n], rows[:, :n]) and shift_logits64(
        v, v_temperature, shifted[n:], rows[:, n:]
    )


@numba.njit(cache=True)
def kl_rows64(log_p: np.ndarray, log_q: np.ndarray, p: np.ndarray, factor: float) -> Any:
    r"""Per row, ``factor`` (:math:`T^2`, or 1.0 for none) times :math:`\sum_c p_c(\log p_c -
    \log q_c)` as ``kl_terms_from_log`` forms the terms (``-inf`` floored, ``+inf`` where
    :math:`p > 0 = q`) and ``reduce_sum`` adds them; ``p`` is NumPy's exp of ``log_p``."""
    n, classes = log_p.shape
    kl = np.empty(n)
    terms = np.empty(classes)
    for i in range(n):
        for c in range(classes):
            lp, lq = log_p[i, c], log_q[i, c]
            if lp > -np.inf and lq == -np.inf:
                terms[c] = np.inf
            else:
                terms[c] = (_floored(lp, _LOWEST) - _floored(lq, _LOWEST)) * p[i, c]
        total = row_sum(terms)
        kl[i] = total if factor == 1.0 else factor * total
    return kl


@numba.njit(cache=True)
def kl_loss64(
    log_p: np.ndarray, log_q: np.ndarray, p: np.ndarray, factor: float, reduce_with: Any
) -> tuple[bool, float]:
    """:func:`kl_rows64`, then ``_small_numba.reduce_rows``; ``(False, 0.0)`` where a row's
    KL is below ``_near_rows.NEAR_CEILING`` (``near_kl_loss64`` forms it without
    cancellation)."""
    rows = kl_rows64(log_p, log_q, p, factor)
    if _below(rows, factor * _NEAR_CEILING):
        return False, 0.0
    return reduce_rows(rows, reduce_with)


@numba.njit(cache=True)
def _below(values: np.ndarray, floor: float) -> bool:
    """Whether a value is at most ``floor`` (NaN is not): such a row is formed by the full
    path (``_near_rows``), which flags it by a test that implies this one."""
    return bool(np.any(values <= floor))


@numba.njit(cache=True)
def tempered_difference64(
    s: np.ndarray, t: np.ndarray, temperature: float, reduction: int, log_base: float
) -> bool:
    r"""The forward distillation gradient :math:`T\,(s - t)` (the product only for
    :math:`T \ne 1`) times :func:`reduction_scale`, into ``s``; False where a value is
    not finite, or where a row may have a :math:`\max_c |s_c - t_c|` below
    ``_near_rows.SPREAD_FLOOR`` times :math:`\max_c t_c`, or a KL below
    ``_near_rows.KL_FLOOR`` (then before writing: the full path forms it without
    cancellation, ``_near_rows.forward_rows_flagged``): where no :math:`|s_c - t_c|`
    reaches ``_near_rows.NEAR_SPREAD``, which such a row's do not (``t``
    probabilities: :math:`t_c \le 1`; Pinsker's inequality). An
    ordinary row is told by its first entries (64 x 100: a pass of two maxima cost 4 us
    of 42)."""
    n, classes = s.shape
    for i in range(n):
        apart = False
        for c in range(classes):
            if abs(s[i, c] - t[i, c]) >= _NEAR_SPREAD:
                apart = True
                break
        if not apart:
            return False
    scale = reduction_scale(n, reduction, log_base)
    for i in range(n):
        tempered_difference_row(s[i], t[i], temperature, scale)
    return _all_finite(s)


@numba.njit(cache=True, inline="always")  # (in its callers' loops)
def tempered_difference_row(s: np.ndarray, t: np.ndarray, temperature: float, scale: float) -> None:
    r"""One row of :func:`tempered_difference64`: :math:`T\,(s - t)` (the product only
    for :math:`T \ne 1`) times ``scale``, into ``s``; the entry of the first top class
    :math:`r` of ``s`` minus the sum of the others' :math:`s_c - t_c` where :math:`s_r`
    and :math:`t_r` are above ``_dominant_entry.DOMINANT``, as ``dominant_from_others``
    (NumPy's order: the row with a 0 at :math:`r`, summed before :math:`T`)."""
    classes = s.shape[0]
    top = 0
    for c in range(classes):
        if s[c] > s[top]:
            top = c
    dominant = classes > 0 and s[top] > _DOMINANT and t[top] > _DOMINANT
    for c in range(classes):
        s[c] = s[c] - t[c]
    if dominant:
        s[top] = 0.0
        s[top] = -row_sum(s)
    for c in range(classes):
        value = s[c]
        if temperature != 1.0:
            value = temperature * value
        s[c] = value * scale


@numba.njit(cache=True)
def reverse_gradient64(
    s: np.ndarray,
    log_s: np.ndarray,
    log_t: np.ndarray,
    temperature: float,
    reduction: int,
    log_base: float,
) -> bool:
    r"""The reverse distillation gradient :math:`T\,s \odot (\log s - \log t - D(s\|t))`
    times :func:`reduction_scale`, into ``s`` (NumPy's exp of ``log_s``): the difference
    is :math:`+\infty` where :math:`t = 0`, and ``weighted_term`` makes a term of
    :math:`s = 0` a zero; False where a value is not finite, or (before writing) where
    a row's KL is below ``_near_rows.KL_FLOOR`` or its spread is small
    (:func:`reverse_spread_is_small`): the full path forms it without cancellation
    (``_near_rows.forward_rows_flagged``)."""
    n = s.shape[0]
    kl = kl_rows64(log_s, log_t, s, 1.0)
    if _below(kl, _KL_FLOOR):  # (the full path's test: KL < the floor)
        return False
    for i in range(n):
        if reverse_spread_is_small(s[i], log_s[i], log_t[i], kl[i]):
            return False
    scale = reduction_scale(n, reduction, log_base)
    for i in range(n):
        reverse_gradient_row(s[i], log_s[i], log_t[i], kl[i], temperature, scale)
    return _all_finite(s)


@numba.njit(cache=True)
def reverse_spread_is_small(s: np.ndarray, log_s: np.ndarray, log_t: np.ndarray, kl: float) -> bool:
    r"""Whether one row's :math:`\max_c |s_c(\log s_c - \log t_c - D)|` (the reverse
    gradient before :math:`T`, as :func:`reverse_gradient_row` forms its entries; ``kl``
    :math:`D`) is below ``_near_rows.SPREAD_FLOOR`` times :math:`\max_c s_c`: the full
    path's rule (``_near_rows.forward_rows_flagged``, whose NaN is not small). An
    ordinary row is told by its first entries."""
    top = 0.0
    for c in range(s.shape[0]):
        top = max(top, s[c])
    floor = _SPREAD_FLOOR * top
    for c in range(s.shape[0]):
        lt = log_t[c]
        difference = log_s[c] - lt if lt > -np.inf else np.inf
        weight = s[c]
        entry = weight * ((difference - kl) if weight != 0.0 else 0.0)
        if not abs(entry) < floor:  # (NaN too)
            return False
    return True


@numba.njit(cache=True, inline="always")  # (in its callers' loops)
def reverse_gradient_row(
    s: np.ndarray, log_s: np.ndarray, log_t: np.ndarray, kl: float, temperature: float, scale: float
) -> None:
    r"""One row of :func:`reverse_gradient64`: :math:`T\,s \odot (\log s - \log t - D)`
    with the row's KL ``kl``, times ``scale``, into ``s`` (:math:`+\infty` difference
    where :math:`t = 0`; a term of :math:`s = 0` a zero); the entry of the first top
    class :math:`r` of ``log_s`` minus the sum of the others where :math:`s_r` is above
    ``_dominant_entry.DOMINANT``, as ``dominant_from_others`` (NumPy's order: the row
    with a 0 at :math:`r`, summed before the scale)."""
    classes = s.shape[0]
    top = 0
    for c in range(classes):
        if log_s[c] > log_s[top]:
            top = c
    dominant = s[top] > _DOMINANT
    for c in range(classes):
        lt = log_t[c]
        difference = log_s[c] - lt if lt > -np.inf else np.inf
        weight = s[c]
        excess = difference - kl
        s[c] = temperature * (weight * (excess if weight != 0.0 else 0.0))
    own = s[top]
    s[top] = 0.0
    rest = row_sum(s)
    s[top] = -rest if dominant else own
    for c in range(classes):
        s[c] = s[c] * scale
