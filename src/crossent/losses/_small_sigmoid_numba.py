r"""The compiled parts of the small sigmoid losses (issue 13, small inputs; Numba).

``_small_sigmoid`` takes a small call of ``sigmoid_cross_entropy``,
``sigmoid_focal_loss`` or their gradients as a hybrid: these functions do the generic
path's (``_sigmoid.py``'s) elementwise arithmetic in its order and its dtype, and the
caller runs NumPy's np.exp, np.log1p and np.log between them on the very values the
generic path gives those functions. Every function here is compiled once per dtype
(float32 and float64) and is written so that each operation is one operation of the
dtype: the constants come in an array ``c`` of that dtype, filled by the caller as
NumPy converts the generic path's Python floats (``float32(1 - eps)``, not
``1 - float32(eps)``), and no literal (a float64 in Numba) enters the arithmetic. The
functions are compiled without fast-math, so no product is contracted into an FMA.

The workspace ``ws`` (``ROWS`` x N, the dtype) carries the elementwise values between
the calls; its rows are named by the constants of ``_small_sigmoid``. The stages are

1. :func:`start`: screen the call (finite logits, targets in [0, 1]), :math:`-|x|` (the
   argument of softplus' exp), the smoothed targets, :math:`1 - t'`
   (``_Binary.complement``) and, where the focal factor needs it for soft targets, the
   arguments of its np.log and np.log1p; then, given weights,
   :func:`spread` (finite, non-negative, broadcast);
2. :func:`terms`: from :math:`L = \operatorname{log1p}(e^{-|x|})` (NumPy's), the softplus
   pair, :math:`\pi t`, the cross-entropy, the focal :math:`\log(1 - p_t)` (hard
   targets) or the argument of its exp (soft), and the arguments of the final exp;
3. :func:`soft_log_q` (soft targets only): :math:`\log(1-p_t)` from NumPy's
   ``log1p(exp(low - high))``, then the arguments of the final exp;
4. :func:`finish` (which calls :func:`terms` when no np.exp follows it): the loss and
   its reduction (the float64 sum in NumPy's pairwise
   order, ``_small_numba.pairwise_sum``), or the gradient and its scale, from NumPy's
   exp of those arguments.

A stage returns False (or ``DECLINE``) where the generic path would raise, warn (an
operation whose result is not finite: overflow, 0 * inf) or give a value that is not
finite; the caller then takes the full path, which does what it does. Each function is
cached on disk by Numba (``cache=True``), keyed by this file: after changing the
constants of ``_small_sigmoid`` (the workspace's rows, the constants' and flags'
places), which are compiled in, touch this file (or clear ``__pycache__``).
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from . import _small_sigmoid as layout
from ._focal_root import CANCELLED as _CANCELLED
from ._small_numba import MEAN as _MEAN
from ._small_numba import NONE as _NONE
from ._small_numba import pairwise_sum

__all__ = ["finish", "soft_log_q", "spread", "start", "terms", "wide_normalizer"]


@numba.njit(cache=True)
def _weighted(coefficient: Any, value: Any, zero: Any) -> Any:
    """``_reduction.weighted_term`` of one entry: ``coefficient * value``, and
    ``coefficient * 0`` (a zero of the coefficient's sign) where the coefficient is 0."""
    return coefficient * value if coefficient != zero else coefficient * zero


@numba.njit(cache=True)
def _needs_log_q(flags: np.ndarray) -> bool:
    """Whether the call forms :math:`\\log(1 - p_t)`: the focal gradient, and the focal
    loss with :math:`\\gamma \\ne 0`."""
    kind = flags[layout.O_KIND]
    return kind == layout.FOCAL_GRAD or (kind == layout.FOCAL_LOSS and flags[layout.O_GAMMA] != 0)


@numba.njit(cache=True)
def _spread(w: np.ndarray, inner: int, count: int, c: np.ndarray, row: np.ndarray) -> bool:
    """``w`` broadcast to the logits into ``row``, entry ``i`` taking ``w[(i // inner) %
    count]``; an empty ``w`` leaves ``row`` as it is. False where a weight is negative or
    not finite (``check_non_negative``)."""
    zero = c[layout.C_ZERO]
    for j in range(w.shape[0]):
        if not (w[j] >= zero and math.isfinite(w[j])):
            return False
    if w.shape[0] != 0:
        for i in range(row.shape[0]):
            row[i] = w[(i // inner) % count]
    return True


@numba.njit(cache=True)
def spread(
    w: np.ndarray,
    w_inner: int,
    w_count: int,
    pw: np.ndarray,
    pw_inner: int,
    pw_count: int,
    c: np.ndarray,
    ws: np.ndarray,
) -> bool:
    """After :func:`start`, the weights and ``pos_weight`` (flat, or empty for none)
    broadcast to the logits into ``ws[WEIGHT]`` and ``ws[POSITIVE]`` (:func:`_spread`);
    False where one is negative or not finite."""
    return _spread(w, w_inner, w_count, c, ws[layout.WEIGHT]) and _spread(
        pw, pw_inner, pw_count, c, ws[layout.POSITIVE]
    )


@numba.njit(cache=True)
def start(x: np.ndarray, t: np.ndarray, c: np.ndarray, flags: np.ndarray, ws: np.ndarray) -> int:
    r"""Screen a call and fill the workspace: ``ws[X]`` (the logits), ``ws[NEG_ABS]``
    (:math:`-|x|`, the argument of softplus' exp), ``ws[TARGET]`` (smoothed), and ones
    in ``ws[WEIGHT]`` and ``ws[POSITIVE]`` (the weights and ``pos_weight`` where
    :func:`spread` puts none: ``1 * v`` is ``v``, and the pairwise sum of N ones is N,
    so weights of ones change no bit).

    ``DECLINE`` for a logit that is not finite or a target outside [0, 1] (NaN
    included); ``SOFT`` where :math:`\log(1-p_t)` is
    needed and a smoothed target is neither 0 nor 1 (``_log_one_minus_pt``'s test), with
    the arguments of its np.log and np.log1p in ``ws[T_ABOVE]`` and ``ws[T_BELOW]``;
    else ``TAKEN``.
    """
    zero, one = c[layout.C_ZERO], c[layout.C_ONE]
    smooth = flags[layout.O_SMOOTH] != 0
    keep, half_eps = c[layout.C_KEEP], c[layout.C_HALF_EPS]
    hard = True
    for i in range(x.shape[0]):
        value, target = x[i], t[i]
        if not (math.isfinite(value) and target >= zero and target <= one):
            return layout.DECLINE
        ws[layout.X, i] = value
        ws[layout.NEG_ABS, i] = -abs(value)
        if smooth:  # (1 - eps) * t + eps / 2, and 1 - t' as (1 - eps) * (1 - t) + eps / 2
            ws[layout.COMPLEMENT, i] = keep * (one - target) + half_eps
            target = keep * target + half_eps
        else:
            ws[layout.COMPLEMENT, i] = one - target
        ws[layout.TARGET, i] = target
        ws[layout.WEIGHT, i] = ws[layout.POSITIVE, i] = one
        if target != one and target != zero:
            hard = False
    if hard or not _needs_log_q(flags):
        return layout.TAKEN
    for i in range(x.shape[0]):  # where(t > 0, t, 1) and -where(t < 1, t, 0)
        target = ws[layout.TARGET, i]
        ws[layout.T_ABOVE, i] = target if target > zero else one
        ws[layout.T_BELOW, i] = -(target if target < one else zero)
    return layout.SOFT


@numba.njit(cache=True)
def terms(c: np.ndarray, flags: np.ndarray, ws: np.ndarray, soft: bool) -> bool:
    r"""``_Binary``'s softplus pair and :math:`\pi t`, ``_bce``, and what follows them.

    ``ws[REST]``: :math:`L = \operatorname{log1p}(e^{-|x|})`, NumPy's, which both
    softplus terms share (:math:`|-x| = |x|`): :math:`\operatorname{sp}(\pm x) =
    \max(\pm x, 0) + L`; :math:`\pi t` from the ``pos_weight`` in ``ws[POSITIVE]``.

    The focal gradient clips :math:`x` to :math:`\pm` ``finfo.max / 4`` after the
    cross-entropy, as the generic path does; :math:`L` is 0 there before and after.
    ``soft`` (``ws[LOG_ABOVE]`` and ``ws[LOG1P_BELOW]``: NumPy's log and log1p of
    ``ws[T_ABOVE]`` and ``ws[T_BELOW]``): ``_log_one_minus_pt``'s two terms, their
    maximum into ``ws[HIGH]`` and the argument of its exp into ``ws[ARG]``; the caller
    then calls :func:`soft_log_q`. Else the arguments of the final exp
    (:func:`_exp_arguments`).
    """
    zero, one = c[layout.C_ZERO], c[layout.C_ONE]
    huge, minus_inf = c[layout.C_HUGE], c[layout.C_NEG_INF]
    clip = flags[layout.O_KIND] == layout.FOCAL_GRAD
    log_q = _needs_log_q(flags)
    for i in range(ws.shape[1]):
        value, rest = ws[layout.X, i], ws[layout.REST, i]
        sp_pos = max(value, zero) + rest
        sp_neg = max(-value, zero) + rest
        target = ws[layout.TARGET, i]
        positive = ws[layout.POSITIVE, i] * target
        first = _weighted(positive, sp_neg, zero)
        second = _weighted(ws[layout.COMPLEMENT, i], sp_pos, zero)
        bce = first + second
        if not (math.isfinite(positive) and math.isfinite(first) and math.isfinite(bce)):
            return False
        ws[layout.POSITIVE, i] = positive
        ws[layout.BCE, i] = bce
        if clip and abs(value) > huge:  # the generic path's clip(x, -huge, huge)
            if rest != zero:
                return False
            value = huge if value > zero else -huge
            sp_pos = max(value, zero) + rest
            sp_neg = max(-value, zero) + rest
        ws[layout.SP_POS, i] = sp_pos
        ws[layout.SP_NEG, i] = sp_neg
        if not log_q:
            continue
        if not soft:  # where(t == 1, log sigma(-x), log sigma(x)) + 0.0
            ws[layout.LOG_Q, i] = (-sp_pos if target == one else -sp_neg) + zero
            continue
        above = ws[layout.LOG_ABOVE, i] + -sp_pos if target > zero else minus_inf
        below = ws[layout.LOG1P_BELOW, i] + -sp_neg if target < one else minus_inf
        high, low = max(above, below), min(above, below)
        finite_high = high if high > minus_inf else zero
        ws[layout.HIGH, i] = high
        ws[layout.ARG, i] = low - finite_high
    if soft and log_q:
        return True
    return _exp_arguments(c, flags, ws)


@numba.njit(cache=True)
def soft_log_q(c: np.ndarray, flags: np.ndarray, ws: np.ndarray) -> bool:
    r""":math:`\log(1-p_t)` of soft targets from NumPy's ``log1p(exp(ws[ARG]))`` in
    ``ws[LOG1P_ARG]``: ``where(finite, finite_high + log1p(exp(low - finite_high)),
    high)``; then the arguments of the final exp."""
    minus_inf = c[layout.C_NEG_INF]
    for i in range(ws.shape[1]):
        high = ws[layout.HIGH, i]
        if high > minus_inf:
            high = high + ws[layout.LOG1P_ARG, i]
        if not math.isfinite(high):
            return False
        ws[layout.LOG_Q, i] = high
    return _exp_arguments(c, flags, ws)


@numba.njit(cache=True)
def _exp_arguments(c: np.ndarray, flags: np.ndarray, ws: np.ndarray) -> bool:
    r"""The arguments of the generic path's last exponentials, from ``ws[EXP]`` on:
    :math:`-\operatorname{sp}(-x), -\operatorname{sp}(x)` (``_bce_grad``'s
    :math:`\sigma(x), \sigma(-x)`) for the cross-entropy's gradient;
    :math:`\gamma\log(1-p_t)` for the focal loss (none for :math:`\gamma = 0`); and
    :math:`\gamma\log(1-p_t)` and the log-ratio :math:`-\operatorname{sp}(x) -
    \operatorname{sp}(-x) - \log(1-p_t)` for its gradient (whose :math:`\sigma(x) - t`
    the caller puts in ``ws[EXP + 2]``: ``_sigmoid._plain_grad``)."""
    gamma, kind = c[layout.C_GAMMA], flags[layout.O_KIND]
    for i in range(ws.shape[1]):
        sp_pos, sp_neg = ws[layout.SP_POS, i], ws[layout.SP_NEG, i]
        if kind == layout.CE_GRAD:
            ws[layout.EXP, i] = -sp_neg
            ws[layout.EXP + 1, i] = -sp_pos
        elif kind == layout.FOCAL_LOSS and flags[layout.O_GAMMA] != 0:
            scaled = gamma * ws[layout.LOG_Q, i]
            if not math.isfinite(scaled):
                return False
            ws[layout.EXP, i] = scaled
        elif kind == layout.FOCAL_GRAD:
            log_q = ws[layout.LOG_Q, i]
            scaled = gamma * log_q
            ratio = -sp_pos - sp_neg - log_q
            if not (math.isfinite(scaled) and math.isfinite(ratio)):
                return False
            ws[layout.EXP, i] = scaled
            ws[layout.EXP + 1, i] = ratio
    return True


@numba.njit(cache=True)
def _normalizer(ws: np.ndarray) -> tuple[bool, Any]:
    """``_Binary.normalizer``: the float64 sum of the broadcast weights ``ws[WEIGHT]`` in
    NumPy's pairwise order, rounded to the dtype (the count of entries, without weights);
    not ok where that sum is not finite (NumPy warns)."""
    total = pairwise_sum(ws[layout.WEIGHT].astype(np.float64))
    scratch = ws[layout.HIGH]  # (free by now)
    scratch[0] = total
    return math.isfinite(total), scratch[0]


@numba.njit(cache=True)
def wide_normalizer(ws: np.ndarray) -> float:
    """The float64 sum of the broadcast weights ``ws[WEIGHT]`` in NumPy's pairwise order,
    not rounded (the exact gradient's ``'mean'``: ``_sigmoid._exact_grad``)."""
    return pairwise_sum(ws[layout.WEIGHT].astype(np.float64))


@numba.njit(cache=True)
def _alpha_t(target: Any, c: np.ndarray) -> Any:
    """``alpha * t + (1 - alpha) * (1 - t)``, as ``_focal_binary`` forms it."""
    return c[layout.C_ALPHA] * target + c[layout.C_ALPHA_REST] * (c[layout.C_ONE] - target)


@numba.njit(cache=True)
def _loss_entry(exps: np.ndarray, c: np.ndarray, flags: np.ndarray, ws: np.ndarray, i: int) -> Any:
    r"""Entry ``i`` of the loss before the weights: the cross-entropy, for the focal loss
    times ``exps[0]`` (NumPy's :math:`e^{\gamma\log(1-p_t)}`, absent for
    :math:`\gamma = 0`) and then weighed by :math:`\alpha_t`; the first value that is
    not finite, if one is (a zero weight after it would hide it)."""
    term = ws[layout.BCE, i]
    if flags[layout.O_KIND] != layout.FOCAL_LOSS:
        return term
    if flags[layout.O_GAMMA] != 0:
        term = term * exps[0, i]
    if flags[layout.O_ALPHA] != 0 and math.isfinite(term):
        term = _weighted(_alpha_t(ws[layout.TARGET, i], c), term, c[layout.C_ZERO])
    return term


@numba.njit(cache=True)
def _gradient_entry(
    exps: np.ndarray, c: np.ndarray, flags: np.ndarray, ws: np.ndarray, i: int
) -> Any:
    r"""Entry ``i`` of the gradient before the weights and the scale, from NumPy's exp of
    :func:`_exp_arguments`. Cross-entropy: ``_bce_grad``, :math:`(1-t)\sigma(x) - \pi
    t\,\sigma(-x)`. Focal: :math:`m\,[\gamma(1-2t)\,e^{r}\cdot\ell + (\sigma(x) -
    t)]`, the product by :math:`\ell` a ``weighted_term``, :math:`\sigma(x) - t` the
    exact kernel's (``ws[EXP + 2]``, ``_sigmoid._plain_grad``), then times
    :math:`\alpha_t` (a plain product). The first value that is not finite, if one is.
    Where the two terms cancel (``_focal_root.CANCELLED``) ``ws[HIGH, i]`` is 1 (else
    0), and the bracket times :math:`m` is ``exps[2, i]`` where given: the caller runs
    :func:`finish` again with ``_focal_root.refined`` there (the full path's value)."""
    one, target = c[layout.C_ONE], ws[layout.TARGET, i]
    if flags[layout.O_KIND] == layout.CE_GRAD:
        return (one - target) * exps[0, i] - ws[layout.POSITIVE, i] * exps[1, i]
    coefficient = c[layout.C_GAMMA] * (one - c[layout.C_TWO] * target) * exps[1, i]
    if not math.isfinite(coefficient):
        return coefficient
    focus = _weighted(coefficient, ws[layout.BCE, i], c[layout.C_ZERO])
    plain = ws[layout.EXP + 2, i]
    total = focus + plain
    cancelled = abs(total) < _CANCELLED * abs(plain)  # (_focal_root.refine's test)
    ws[layout.HIGH, i] = one if cancelled else c[layout.C_ZERO]  # (free by now)
    grad = exps[2, i] if cancelled and exps.shape[0] > 2 else exps[0, i] * total
    if flags[layout.O_ALPHA] != 0 and math.isfinite(grad):
        grad = _alpha_t(target, c) * grad
    return grad


@numba.njit(cache=True)
def _gradient_scale(normalizer: Any, c: np.ndarray, flags: np.ndarray) -> Any:
    """``scale_for_reduction``'s factor: for ``MEAN`` ``1 / normalizer`` (0 where it is
    0) in the dtype, divided by :math:`\\ln b`; otherwise the dtype's ``1.0 / ln b``
    (``c[C_INV_LOG_BASE]``) or 1."""
    zero, one = c[layout.C_ZERO], c[layout.C_ONE]
    if flags[layout.O_REDUCTION] != _MEAN:
        return c[layout.C_INV_LOG_BASE] if flags[layout.O_BASE] != 0 else one
    scale = one / normalizer if normalizer > zero else normalizer * zero
    return scale / c[layout.C_LOG_BASE] if flags[layout.O_BASE] != 0 else scale


@numba.njit(cache=True)
def finish(
    exps: np.ndarray, c: np.ndarray, flags: np.ndarray, ws: np.ndarray, out: np.ndarray
) -> tuple[bool, Any, Any]:
    r"""``(ok, loss, normalizer)``: the loss or the gradient, from NumPy's exp of
    :func:`_exp_arguments` (``exps``); for a gradient, ``loss`` is 1 where the focal
    gradient marked an entry in ``ws[HIGH]`` (its two terms cancel), else 0 (issue 13:
    the caller asks no np.count_nonzero).

    Each entry (:func:`_loss_entry`, :func:`_gradient_entry`) is weighed by
    ``ws[WEIGHT]`` (a ``weighted_term``). A gradient is then scaled
    (:func:`_gradient_scale`) into ``out``. A loss is reduced as ``reduce_loss`` does:
    for ``NONE`` into ``out``, divided by :math:`\ln b`, plus 0; else the float64
    pairwise sum rounded to the dtype, divided by the normaliser for ``MEAN`` (0 where
    it is 0), by :math:`\ln b`, plus 0. Not ok where a value is not finite (NumPy
    would warn, or the result would not be finite).
    """
    zero = c[layout.C_ZERO]
    n = ws.shape[1]
    if exps.shape[0] == 0 and not terms(c, flags, ws, False):  # (no exp after terms)
        return False, zero, zero
    ok, normalizer = _normalizer(ws)
    gradient = flags[layout.O_KIND] % 2 == 1  # (CE_GRAD, FOCAL_GRAD)
    scale = _gradient_scale(normalizer, c, flags) if gradient else zero
    if not (ok and math.isfinite(scale)):
        return False, zero, zero
    reduction, base, log_base = (
        flags[layout.O_REDUCTION],
        flags[layout.O_BASE] != 0,
        c[layout.C_LOG_BASE],
    )
    values = out if gradient or reduction == _NONE else ws[layout.ARG]  # (free by now)
    for i in range(n):
        if gradient:
            value = _gradient_entry(exps, c, flags, ws, i)
        else:
            value = _loss_entry(exps, c, flags, ws, i)
        finite = math.isfinite(value)
        if finite:
            value = _weighted(ws[layout.WEIGHT, i], value, zero)
            finite = math.isfinite(value)
        if gradient and finite:
            value = value * scale
            finite = math.isfinite(value)
        elif reduction == _NONE and finite:  # finalize
            value = (value / log_base if base else value) + zero
            finite = math.isfinite(value)
        if not finite:
            return False, zero, zero
        values[i] = value
    if gradient:  # the loss slot: whether an entry is marked in ws[HIGH] (focal: cancelled)
        marked = zero
        if flags[layout.O_KIND] == layout.FOCAL_GRAD:
            for i in range(n):
                if ws[layout.HIGH, i] != zero:
                    marked = c[layout.C_ONE]
        return True, marked, normalizer
    if reduction == _NONE:
        return True, zero, normalizer
    total64 = pairwise_sum(values.astype(np.float64))
    scratch = ws[layout.HIGH]  # (free by now)
    scratch[0] = total64
    total = scratch[0]
    if reduction == _MEAN:
        total = total / normalizer if normalizer > zero else normalizer * zero
    if base:
        total = total / log_base
    if not (math.isfinite(total64) and math.isfinite(total)):
        return False, zero, zero
    return True, total + zero, normalizer + zero
