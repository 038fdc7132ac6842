r"""The compiled parts of the small calls of focal, poly-1 and hinge (issue 13, Numba).

Focal and poly-1: the hybrid (float64)
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
Their full path is the generic one: ``_terms.labelled_softmax`` (``softmax_rows``,
``log_prob_of_labels``), then the family's arithmetic on :math:`\log p_y` and the
reduction, all in float64 (float32 logits are computed on a float64 copy, the result
rounded once: ``_small_label_families._in_float64``, ``_widen.upcast``). The small call
(``_small_label_families``) is a hybrid, as softmax cross-entropy's float64 one
(``_softmax_small``): the row statistics (``_small_numba.shift_rows64``, np.exp,
:func:`rest_of_rows`, np.log1p), then the functions below doing the full path's
arithmetic in its order between NumPy's own np.exp, np.expm1, np.log1p and np.log, run
by the caller on the very values the full path gives them. So the values are the full
path's bit for bit on every CPU (NumPy's SIMD transcendental functions included). These
functions are compiled *without* fast-math: no product is contracted into an FMA, and
each operation rounds as NumPy's does.

* :func:`label_rows64`: :math:`\log p_y = \min(\sigma_y - \ell, 0)`; for a gradient
  also :math:`\sigma - \ell` (the argument of ``probs``' exp) beside it, so that one
  np.exp gives :math:`p` and :math:`p_y` (poly-1), or :math:`p` and the focal
  modulation once :func:`scaled_log1mexp64` has written its argument in the last
  column (NumPy's exp of an entry is the same wherever it sits in the buffer).
* :func:`log1mexp_args64` and :func:`scaled_log1mexp64`: ``_focal._log1mexp`` between
  its ufuncs (:math:`\log(1 - e^a)`: ``log1p(-exp(a))`` below :math:`-\ln 2`,
  ``log(-expm1(a))`` above, :math:`-\infty` at 0), times :math:`\gamma`; the caller's
  np.exp of it is the modulation :math:`(1 - p_y)^\gamma`.
* :func:`focal_loss64`, :func:`focal_gradient64`, :func:`poly_loss64`,
  :func:`poly_gradient64`: the bodies of ``_focal.py`` and ``_poly.py``, then
  :func:`_reduce_rows` (``_reduction.reduce_loss`` and ``finalize``) or the
  reduction's scale (:func:`_scale`).

Focal and poly-1: one call
~~~~~~~~~~~~~~~~~~~~~~~~~~
:func:`label_libm` runs the hybrid's functions with ``_small_loops_numba.apply`` on
the same values in place of NumPy's calls: one compiled call, the same bits, about 5
us instead of 12. ``apply`` makes them by the C library's ``exp``, ``log``, ``log1p``
and ``expm1`` (as Numba calls them without fast-math or SVML) where NumPy's float64
np.exp, np.log, np.log1p and np.expm1 call the C library value by value
(``_small_label_families.libm_is_numpys``: x86-64 Linux without AVX-512, checked on
probes with :func:`libm_agrees`), or by NumPy's own float64 inner loops
(``_small_loops.numpy_loops``: where NumPy runs its own SIMD code, as on AVX-512).

Hinge (float64 and float32)
~~~~~~~~~~~~~~~~~~~~~~~~~~~
The hinge losses need no transcendental function, so a call is two compiled ones:
:func:`hinge_margins` (screening, ``_hinge._hinge``'s margins), then :func:`hinge_loss`
(the loss and its reduction) or :func:`hinge_gradient` (the subgradient and its
scale), in the dtype of the logits as NumPy computes them (``delta`` is rounded to
float32 for float32 logits, as NumPy 2 rounds a Python float against a float32 array).

Each function returns False (or ``(False, 0)``), having written nothing the caller
hands back, where the full path would raise, warn or give a value that is not finite:
the caller then takes the full path, which does what it does.
``tests/losses/test_issue13_small_label_families.py`` and
``test_issue13_small_focal_speedup.py`` pin all of it against the full path.
Importing this module imports Numba; ``_small_label_families`` imports it on the
first call it takes.
"""

from __future__ import annotations

import math
import types
from typing import Any

import numba
import numpy as np

from ._poly import near_gap
from ._small_loops_numba import EXP as _EXP
from ._small_loops_numba import EXPM1 as _EXPM1
from ._small_loops_numba import LOG as _LOG
from ._small_loops_numba import LOG1P as _LOG1P
from ._small_loops_numba import apply
from ._small_numba import LABEL as _LABEL
from ._small_numba import MEAN as _MEAN
from ._small_numba import NONE as _NONE
from ._small_numba import REST as _REST
from ._small_numba import pairwise_sum, row_sum, shift_rows64

__all__ = [
    "focal_gradient64",
    "focal_loss64",
    "hinge_gradient",
    "hinge_loss",
    "hinge_margins",
    "label_libm",
    "label_rows64",
    "label_weights",
    "libm_agrees",
    "log1mexp_args64",
    "poly_gradient64",
    "poly_loss64",
    "rest_of_rows",
    "scaled_log1mexp64",
]

_near_gap = numba.njit(cache=True)(near_gap)
"""``_poly.near_gap`` compiled (the poly-1 loss's Taylor series, written once there)."""

_LOG_HALF = -math.log(2.0)
"""Where ``_focal._log1mexp`` changes formula: :math:`a > -\\ln 2` is *near* 0."""


@numba.njit(cache=True)
def label_weights(
    labels: np.ndarray,
    classes: int,
    weight: np.ndarray,
    ignore_index: int,
    ignore: bool,
    safe: np.ndarray,
    weights: np.ndarray,
) -> tuple[bool, float]:
    r"""``prepare_labels`` and ``Batch.normalizer``: ``(ok, normaliser)`` with the
    labels made safe into ``safe`` (0 on rows of ``ignore_index`` when ``ignore``),
    :math:`\omega_i = w_{y_i}` (1 without class ``weight``; 0 on ignored rows) into
    ``weights[0]`` and whether the row counts into ``weights[1]`` (1.0 or 0.0); the
    normaliser is :math:`\sum_i \omega_i` in NumPy's pairwise order. False for a weight
    that is negative or not finite, or a label (not ignored) that is no class."""
    for c in range(weight.shape[0]):
        if not (weight[c] >= 0.0 and weight[c] < np.inf):
            return False, 0.0
    for i in range(labels.shape[0]):
        label = labels[i]
        if ignore and label == ignore_index:
            safe[i], weights[0, i], weights[1, i] = 0, 0.0, 0.0
            continue
        if label < 0 or label >= classes:
            return False, 0.0
        safe[i], weights[1, i] = label, 1.0
        weights[0, i] = weight[label] if weight.shape[0] else 1.0
    return True, pairwise_sum(weights[0])


@numba.njit(cache=True)
def rest_of_rows(terms: np.ndarray, shifted: np.ndarray, z: np.ndarray, rows: np.ndarray) -> bool:
    r"""``log_sum_exp_shifted`` between its exp and its log1p, in float64 (``terms``:
    :math:`e^\sigma`, NumPy's; 1 is taken off where :math:`\sigma = 0`, in place, as
    there): into ``rows[REST]`` :math:`\sum_{c:\,\sigma_c \ne 0} e^{\sigma_c} + (n_0 -
    1)`, each row summed in NumPy's pairwise order from 0 (:func:`_row_sum`; rows of
    more than 128 classes: ``_small_numba.row_sum``)."""
    n, classes = terms.shape
    for i in range(n):
        ties = 0
        for c in range(classes):
            if shifted[i, c] == 0.0:
                terms[i, c] -= 1.0
                ties += 1
            elif shifted[i, c] == -np.inf and z[i, c] != -np.inf:
                return False  # the difference overflows the dtype: NumPy would warn
        total = _row_sum(terms[i], 0.0) if classes <= 128 else row_sum(terms[i])
        rows[_REST, i] = total + float(ties - 1)
    return True


@numba.njit(cache=True)
def _reduce_rows(
    loss: np.ndarray, reduction: int, log_base: float, normalizer: float, out: np.ndarray
) -> tuple[bool, float]:
    r"""``(ok, value)``: ``reduce_loss`` of per-row float64 ``loss`` (0 on
    ignored rows) over ``normalizer`` (``'mean'``: 0 where it is 0), and ``finalize``
    (:math:`/\ln b` for ``log_base`` not 0, then ``+ 0.0``) as NumPy computes them:
    ``reduce_sum``'s pairwise sum, the divisions by the normaliser and by
    :math:`\ln b`. For ``NONE`` the rows go to ``out`` and ``value`` is 0;
    ``ok`` is False where a row or the reduced value is not finite."""
    n = loss.shape[0]
    for i in range(n):
        if not np.isfinite(loss[i]):
            return False, 0.0
    if reduction == _NONE:
        for i in range(n):
            value = loss[i] / log_base if log_base != 0.0 else loss[i]
            if not np.isfinite(value):
                return False, 0.0
            out[i] = value + 0.0
        return True, 0.0
    total = pairwise_sum(loss)
    if reduction == _MEAN:
        total = total / normalizer if normalizer > 0.0 else 0.0  # (+ 0.0 below: no -0.0)
    if log_base != 0.0:
        total = total / log_base
    return bool(np.isfinite(total)), total + 0.0


@numba.njit(cache=True)
def _scale(normalizer: float, reduction: int, log_base: float) -> float:
    r"""``scale_for_reduction`` (float64) as NumPy forms it: for ``MEAN`` 1 over
    ``normalizer`` (0 where it is 0), then over :math:`\ln b`; else :math:`1/\ln b`
    (or 1)."""
    if reduction != _MEAN:
        return 1.0 / log_base if log_base != 0.0 else 1.0
    scale = 1.0 / normalizer if normalizer > 0.0 else 0.0
    return scale / log_base if log_base != 0.0 else scale


@numba.njit(cache=True)
def label_rows64(
    shifted: np.ndarray, rows: np.ndarray, ell: np.ndarray, log_p_y: np.ndarray, out: np.ndarray
) -> int:
    r"""``log_prob_of_labels``: :math:`\log p_y = \min(\sigma_y - \ell, 0)` into
    ``log_p_y`` (N; it may be ``ell`` itself: each :math:`\ell_i` is read before
    :math:`\log p_{y_i}` is written); unless ``out`` is empty, :math:`\sigma - \ell`
    (``probs``' argument of exp) into its first C columns and :math:`\log p_y` into its
    last (N x (C + 1)). Returns how many :math:`\log p_y` are *near* 0
    (:math:`> -\ln 2`)."""
    n = log_p_y.shape[0]
    classes = shifted.shape[1]
    probs = out.shape[0] != 0
    near = 0
    for i in range(n):
        ell_i = ell[i]
        value = rows[_LABEL, i] - ell_i
        value = value if value < 0.0 else 0.0  # np.minimum(., 0.0); never NaN here
        if value > _LOG_HALF:
            near += 1
        if probs:
            for c in range(classes):
                out[i, c] = shifted[i, c] - ell_i
            out[i, classes] = value
        log_p_y[i] = value
    return near


@numba.njit(cache=True)
def log1mexp_args64(
    log_p_y: np.ndarray, p_y: np.ndarray, expm1: np.ndarray, args: np.ndarray
) -> None:
    r"""The arguments of ``_log1mexp``'s np.log1p and np.log where some :math:`a = \log
    p_y` is *near* 0: into ``args[0]`` :math:`-e^a` (``p_y``: np.exp's) where :math:`a
    \le -\ln 2`, into ``args[1]`` :math:`-\operatorname{expm1}(a)` where :math:`-\ln 2
    < a < 0`; elsewhere the values ``_log1mexp`` puts there (-0.5, as
    :math:`-e^{-\ln 2}`, and 1.0), whose logarithms are finite."""
    for i in range(log_p_y.shape[0]):
        a = log_p_y[i]
        near = a > _LOG_HALF
        args[0, i] = -0.5 if near else -p_y[i]
        args[1, i] = -expm1[i] if near and a < 0.0 else 1.0


@numba.njit(cache=True)
def scaled_log1mexp64(
    log_p_y: np.ndarray, far: np.ndarray, near: np.ndarray, gamma: float, out: np.ndarray
) -> None:
    r""":math:`\gamma\log(1 - e^a)` into the last column of ``out`` (N x k) from np.log1p's
    values ``far`` and np.log's ``near`` (:func:`log1mexp_args64`; read only where
    :math:`a > -\ln 2`): ``_modulation``'s argument of exp. For a gradient ``out`` is
    :func:`label_rows64`'s, so that one np.exp gives :math:`p` and the modulation."""
    last = out.shape[1] - 1
    for i in range(log_p_y.shape[0]):
        a = log_p_y[i]
        value = far[i]
        if a > _LOG_HALF:
            value = near[i] if a < 0.0 else -np.inf
        out[i, last] = gamma * value


@numba.njit(cache=True)
def focal_loss64(
    log_p_y: np.ndarray,
    modulation: np.ndarray,
    weights: np.ndarray,
    reduction: int,
    log_base: float,
    normalizer: float,
    out: np.ndarray,
) -> tuple[bool, float]:
    r"""``softmax_focal_loss``'s body and reduction: :math:`\omega\,m\,(-\log p_y)` per
    row, 0 where :math:`\omega m = 0` (``weighted_term``); :math:`m`: np.exp's, in the
    last column of ``modulation`` (N x k), or 1 where ``modulation`` is empty
    (:math:`\gamma = 0`); :math:`\omega`: :func:`label_weights`' (``weigh``'s product)."""
    n = log_p_y.shape[0]
    focused = modulation.shape[0] != 0
    last = modulation.shape[1] - 1
    loss = np.empty_like(log_p_y)
    for i in range(n):
        m = modulation[i, last] if focused else 1.0
        if weights.shape[0]:
            m = weights[0, i] * m
        loss[i] = m * -log_p_y[i] if m != 0.0 else 0.0
    return _reduce_rows(loss, reduction, log_base, normalizer, out)


@numba.njit(cache=True)
def _finish_gradient64(
    e: np.ndarray,
    labels: np.ndarray,
    expm1: np.ndarray,
    factor: np.ndarray,
    scale: float,
    weights: np.ndarray,
    out: np.ndarray,
) -> None:
    r"""``LabelledSoftmax.finish_gradient``: :math:`(f_i\,(p_i - e_{y_i}))\,s` into
    ``out`` (N x C) from the per-row ``factor`` :math:`f` (:math:`\omega` included) and
    ``e``, which holds :math:`p` (np.exp's) in its first C columns, the label's entry
    :math:`p_y - 1` being ``expm1`` (np.expm1's of :math:`\log p_y`); 0 on the rows
    :func:`label_weights` ignores. (Every value is finite: :math:`p \in [0, 1]`, and the
    factors of focal and poly-1 are bounded.)"""
    n, classes = out.shape
    for i in range(n):
        label = labels[i]
        ignored = weights.shape[0] and weights[1, i] == 0.0
        for c in range(classes):
            p = expm1[i] if c == label else e[i, c]  # probs_minus_onehot
            out[i, c] = 0.0 if ignored else (factor[i] * p) * scale


@numba.njit(cache=True)
def focal_gradient64(
    e: np.ndarray,
    labels: np.ndarray,
    log_p_y: np.ndarray,
    p_y: np.ndarray,
    expm1: np.ndarray,
    gamma: float,
    weights: np.ndarray,
    reduction: int,
    log_base: float,
    normalizer: float,
    out: np.ndarray,
) -> None:
    r"""``softmax_focal_loss_grad``'s body into ``out`` (N x C): :math:`f_i\,(p_i -
    e_{y_i})\,s` with :math:`f = (\omega m)\,(1 - \gamma r)` and :math:`r = p_y\,\log
    p_y / (-\operatorname{expm1}\log p_y)` (0 where :math:`p_y = 0`, -1 where
    :math:`\log p_y = 0`); ``e`` (N x (C + 1), np.exp's) holds :math:`p` and, last,
    the modulation :math:`m` (:func:`scaled_log1mexp64`'s exp; :math:`m = 1` for
    :math:`\gamma = 0`); ``p_y`` and ``expm1``: np.exp's and np.expm1's of
    :math:`\log p_y`."""
    n, classes = out.shape
    factor = np.empty_like(log_p_y)
    for i in range(n):
        a, p = log_p_y[i], p_y[i]
        ratio = 0.0 if a < 0.0 else -1.0
        if a < 0.0 and p > 0.0:
            ratio = p * (a / -expm1[i])
        m = e[i, classes] if gamma != 0.0 else 1.0
        if weights.shape[0]:
            m = weights[0, i] * m
        factor[i] = m * (1.0 - gamma * ratio)
    scale = _scale(normalizer, reduction, log_base)
    _finish_gradient64(e, labels, expm1, factor, scale, weights, out)


@numba.njit(cache=True)
def poly_loss64(
    log_p_y: np.ndarray,
    expm1: np.ndarray,
    epsilon: float,
    weights: np.ndarray,
    reduction: int,
    normalizer: float,
    out: np.ndarray,
) -> tuple[bool, float]:
    r"""``poly1_cross_entropy``'s body and reduction: ``_poly.poly_terms`` per row
    (:math:`-\log p_y - \varepsilon\,\operatorname{expm1}(\log p_y)`, for
    :math:`\varepsilon < 0` with the gap :math:`g(u)`), times :math:`\omega` (0 where it
    is 0)."""
    n = log_p_y.shape[0]
    loss = np.empty_like(log_p_y)
    for i in range(n):
        if epsilon >= 0.0:
            value = -log_p_y[i] - epsilon * expm1[i]
        else:
            u = -log_p_y[i]
            gap = _near_gap(u) if u < 1.0 else u + expm1[i]
            value = gap if epsilon == -1.0 else (1.0 + epsilon) * u - epsilon * gap
        if weights.shape[0]:
            omega = weights[0, i]
            value = omega * value if omega != 0.0 else 0.0
        loss[i] = value
    return _reduce_rows(loss, reduction, 0.0, normalizer, out)


@numba.njit(cache=True)
def poly_gradient64(
    e: np.ndarray,
    labels: np.ndarray,
    expm1: np.ndarray,
    epsilon: float,
    weights: np.ndarray,
    reduction: int,
    normalizer: float,
    out: np.ndarray,
) -> None:
    r"""``poly1_cross_entropy_grad``'s body into ``out`` (N x C): :math:`\omega\,(1 +
    \varepsilon p_y)\,(p_i - e_{y_i})\,s`, :math:`1 + \varepsilon p_y` as :math:`(1 +
    \varepsilon) + \varepsilon\operatorname{expm1}(\log p_y)`; ``e`` holds :math:`p` (and,
    last, :math:`p_y`, unused); ``expm1``: np.expm1's of :math:`\log p_y`."""
    n = out.shape[0]
    factor = np.empty(n, out.dtype)
    for i in range(n):
        value = (1.0 + epsilon) + epsilon * expm1[i]  # (1 + eps) + eps (p_y - 1)
        factor[i] = weights[0, i] * value if weights.shape[0] else value
    scale = _scale(normalizer, reduction, 0.0)
    _finish_gradient64(e, labels, expm1, factor, scale, weights, out)


@numba.njit(cache=True)
def _constants(like: np.ndarray, normalizer: float) -> tuple[Any, Any, Any]:
    """0, 1 and ``normalizer`` in the dtype of ``like``."""
    constants = np.empty(3, dtype=like.dtype)
    constants[0], constants[1], constants[2] = 0.0, 1.0, normalizer
    return constants[0], constants[1], constants[2]


@numba.njit(cache=True)
def hinge_margins(z: np.ndarray, labels: np.ndarray, delta: float, margins: np.ndarray) -> bool:
    r"""``_hinge._hinge``'s margins :math:`(z_c + t) + \tau`, :math:`t + \tau = \Delta -
    z_y` (``_hinge._margin``), of
    ``z`` (N x C, float32 or float64) and int64 ``labels`` into ``margins`` (in the dtype
    of ``z``:
    :math:`\Delta` rounded to it as NumPy 2 rounds a Python float against the array),
    :math:`-\infty` on the target and on rivals of :math:`-\infty`. False for a label
    that is no class, a NaN or :math:`+\infty`, a row of :math:`-\infty`, a target of
    :math:`-\infty`, or a margin that overflows (:math:`\Delta - z_y` too, which the
    full path forms where it puts :math:`-\infty`)."""
    n, classes = z.shape
    typed = np.empty(1, dtype=z.dtype)
    typed[0] = delta
    delta_t = typed[0]
    for i in range(n):
        label = labels[i]
        if label < 0 or label >= classes:
            return False
        z_y = z[i, label]
        if not np.isfinite(z_y) or not np.isfinite(delta_t - z_y):
            return False  # (a row of -inf has its target there)
        t = delta_t - z_y  # t + tau = delta - z_y exactly (TwoSum): _hinge._margin
        back = t - delta_t
        tau = (delta_t - (t - back)) + (-z_y - back)
        for c in range(classes):
            value = z[i, c]
            if value != value or value == np.inf:
                return False
            margin = -np.inf
            if c != label and value != -np.inf:
                margin = (value + t) + tau  # _hinge._margin: exact near the kink
                if not np.isfinite(margin):
                    return False
            margins[i, c] = margin
    return True


@numba.njit(cache=True)
def hinge_loss(
    margins: np.ndarray,
    weston_watkins: bool,
    weights: np.ndarray,
    reduction: int,
    normalizer: float,
    out: np.ndarray,
) -> tuple[bool, float]:
    r"""``(ok, value)``: ``multiclass_hinge_loss`` from :func:`hinge_margins` (N x C,
    overwritten): per row the largest (Crammer-Singer) or the sum (Weston-Watkins, in
    NumPy's pairwise order and the dtype; at most 128 classes) of :math:`\max(0,
    \text{margin})`, then ``reduce_loss``: the sum in float64 rounded to the dtype once,
    the mean's division by ``normalizer`` (0 where it is 0) in the dtype; 0 on the rows
    :func:`label_weights` ignores. For ``NONE`` the rows go to ``out`` and ``value`` is
    0; ``value`` is a float64 holding a value of the dtype. ``ok`` is False where a sum
    overflows (NumPy would warn)."""
    n, classes = margins.shape
    zero, _, rows = _constants(margins, normalizer)
    loss = np.empty(n)  # float64 holding values of the dtype, as reduce_sum casts them
    for i in range(n):
        row = margins[i]
        for c in range(classes):
            row[c] = max(row[c], zero)  # np.maximum(margin, 0): finite or -inf here
        if weston_watkins:
            loss[i] = _row_sum(row, zero)
        else:
            top = row[0]
            for c in range(1, classes):
                top = max(top, row[c])
            loss[i] = top
        if not np.isfinite(loss[i]):
            return False, 0.0
        if weights.shape[0] and weights[1, i] == 0.0:
            loss[i] = 0.0  # zero_where_ignored
    if reduction == _NONE:
        for i in range(n):
            out[i] = loss[i] + 0.0
        return True, 0.0
    total = margins[0, :1].copy()
    total[0] = pairwise_sum(loss)  # rounded to the dtype once
    if reduction == _MEAN:
        total[0] = total[0] / rows if rows > zero else zero
    return bool(np.isfinite(total[0])), total[0] + zero


@numba.njit(cache=True)
def _row_sum(row: np.ndarray, zero: Any) -> Any:
    """``np.add.reduce`` of one contiguous row of at most 128 entries in its dtype, in
    NumPy's pairwise order (``_small_numba.block_sum``'s, with accumulators of the
    row's dtype: ``zero`` is a 0 of it)."""
    n = row.shape[0]
    if n < 8:
        total = zero
        for i in range(n):
            total += row[i]
        return zero + total
    r = row[:8].copy()
    k = 8
    stop = n - n % 8
    while k < stop:
        for j in range(8):
            r[j] += row[k + j]
        k += 8
    total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    for i in range(k, n):
        total += row[i]
    return zero + total


@numba.njit(cache=True)
def hinge_gradient(
    margins: np.ndarray,
    z: np.ndarray,
    labels: np.ndarray,
    weston_watkins: bool,
    weights: np.ndarray,
    reduction: int,
    normalizer: float,
    out: np.ndarray,
) -> None:
    r"""``multiclass_hinge_loss_grad`` from :func:`hinge_margins` of the scores ``z``
    into ``out`` (N x C): the pulls (Crammer-Singer: 1 at the first highest-scored rival,
    the first largest margin, when its margin is positive;
    Weston-Watkins: 1 at every positive margin), :math:`-\sum` of them (its ``-0.0``
    too) at the target, times the reduction's scale (the mean's 1 over ``normalizer``, 0
    where it is 0, in the dtype); 0 on the rows :func:`label_weights` ignores."""
    n, classes = margins.shape
    zero, one, rows = _constants(margins, normalizer)
    scale = one
    if reduction == _MEAN:
        scale = one / rows if rows > zero else zero
    for i in range(n):
        rival = 0  # np.argmax of the scores of the rivals (not of -inf): the first largest
        top = -np.inf
        for c in range(classes):
            if margins[i, c] != -np.inf and z[i, c] > top:
                rival, top = c, z[i, c]
        violated = margins[i, rival] > 0
        count = zero
        for c in range(classes):
            if weston_watkins:
                pull = one if margins[i, c] > 0 else zero
            else:
                pull = one if violated and c == rival else zero
            out[i, c] = pull * scale
            count += pull
        out[i, labels[i]] = -count * scale
        if weights.shape[0] and weights[1, i] == 0.0:
            out[i] = zero  # zero_where_ignored


# ------------------------------- one compiled call: the C library's functions or NumPy's loops


@numba.njit(cache=True)
def libm_agrees(x: np.ndarray, want: np.ndarray) -> bool:
    r"""Whether ``math.exp``, ``math.log``, ``math.log1p`` and ``math.expm1`` (compiled:
    the C library's) of the probes ``x`` (4 x k) are ``want`` (NumPy's np.exp, np.log,
    np.log1p and np.expm1 of the rows of ``x``) bit for bit (NaN nowhere)."""
    for j in range(x.shape[1]):
        if math.exp(x[0, j]) != want[0, j] or math.log(x[1, j]) != want[1, j]:
            return False
        if math.log1p(x[2, j]) != want[2, j] or math.expm1(x[3, j]) != want[3, j]:
            return False
    return True


@numba.njit(cache=True)
def _fresh(loops: np.ndarray, k: int, x: np.ndarray) -> np.ndarray:
    """Function ``k`` of ``x`` (C-contiguous) into a fresh array (``apply``)."""
    out = np.empty_like(x)
    apply(loops, k, x, out)
    return out


@numba.njit(cache=True)
def _libm_rows(
    z: np.ndarray, labels: np.ndarray, gradient: bool, loops: np.ndarray
) -> tuple[bool, np.ndarray, np.ndarray, np.ndarray, int]:
    r"""The hybrid's rows (``_small_label_families._label_rows``) of ``z`` with
    ``apply``'s exp and log1p (``loops``) in place of NumPy's calls: ``(ok, shifted,
    log p_y, work, near)`` as :func:`label_rows64` leaves them."""
    n, classes = z.shape
    shifted = np.empty((n, classes), z.dtype)
    rows = np.empty((3, n), z.dtype)
    ell = np.empty(n, z.dtype)
    work = np.empty((n, classes + 1) if gradient else (0, 0), z.dtype)
    if not shift_rows64(z, labels, 1.0, shifted, rows):
        return False, shifted, ell, work, 0
    if not rest_of_rows(_fresh(loops, _EXP, shifted), shifted, z, rows):
        return False, shifted, ell, work, 0
    apply(loops, _LOG1P, rows[_REST], ell)
    near = label_rows64(shifted, rows, ell, ell, work)
    return True, shifted, ell, work, near


@numba.njit(cache=True)
def _libm_modulation(
    log_p_y: np.ndarray,
    p_y: np.ndarray,
    expm1: np.ndarray,
    near: int,
    gamma: float,
    out: np.ndarray,
    loops: np.ndarray,
    spare: np.ndarray,
) -> None:
    r"""``_small_label_families._scaled_log1mexp`` with ``apply``'s log1p and log
    (``loops``): :math:`\gamma\log(1 - p_y)`, the argument of the modulation's exp,
    into the last column of ``out`` (N x k); ``spare``: 4 x N of scratch."""
    far = spare[0]
    if near:
        args, close = spare[1:3], spare[3]
        log1mexp_args64(log_p_y, p_y, expm1, args)
        apply(loops, _LOG1P, args[0], far)
        apply(loops, _LOG, args[1], close)
        scaled_log1mexp64(log_p_y, far, close, gamma, out)
    else:
        negated = spare[1]
        for i in range(p_y.shape[0]):
            negated[i] = -p_y[i]
        apply(loops, _LOG1P, negated, far)
        scaled_log1mexp64(log_p_y, far, far, gamma, out)


@numba.njit(cache=True)
def _exp_of_work(loops: np.ndarray, work: np.ndarray) -> np.ndarray:
    """``apply``'s exp of ``work``: in place by the C library's function (no ``loops``),
    else into a fresh array, as NumPy's loop is called on np.exp(x)."""
    e = work if loops.shape[0] == 0 else np.empty_like(work)
    apply(loops, _EXP, work, e)
    return e


_LIBM_CALLS = ("focal_loss", "focal_gradient", "poly_loss", "poly_gradient")
"""What :func:`label_libm` computes, by its ``what`` (the index here)."""
_FOCAL_GRADIENT, _POLY_LOSS, _POLY_GRADIENT = 1, 2, 3


@numba.njit(cache=True)
def label_libm(
    z: np.ndarray,
    labels: np.ndarray,
    what: int,
    option: float,
    weights: np.ndarray,
    reduction: int,
    log_base: float,
    normalizer: float,
    per_row: np.ndarray,
    grad: np.ndarray,
    loops: np.ndarray,
) -> tuple[bool, float]:
    r"""``(ok, value)`` of the small call ``what`` of logits ``z`` (N x C, float64): the
    hybrid's compiled functions (:func:`focal_loss64`,
    :func:`focal_gradient64`, :func:`poly_loss64`, :func:`poly_gradient64`) with the
    hybrid's NumPy calls made by ``_small_loops_numba.apply``: NumPy's own loops
    (``loops``), or, where ``loops`` is empty, the C library's functions.
    ``option``: :math:`\gamma` or :math:`\varepsilon`; a loss's per-row output goes to
    ``per_row``, a gradient to ``grad`` (N x C; nothing written where ``ok`` is False),
    and ``log_base`` is 0.0 for poly-1 (no ``base``)."""
    gradient = what in (_FOCAL_GRADIENT, _POLY_GRADIENT)
    ok, _, log_p_y, work, near = _libm_rows(z, labels, gradient, loops)
    if not ok:
        return False, 0.0
    if what == _POLY_LOSS:
        expm1 = _fresh(loops, _EXPM1, log_p_y)
        return poly_loss64(log_p_y, expm1, option, weights, reduction, normalizer, per_row)
    if what == _POLY_GRADIENT:
        e = _exp_of_work(loops, work)
        expm1 = _fresh(loops, _EXPM1, log_p_y)
        poly_gradient64(e, labels, expm1, option, weights, reduction, normalizer, grad)
        return True, 0.0
    gamma = option
    n = log_p_y.shape[0]
    scratch = np.empty((8, n), z.dtype)  # p_y, expm1, argument, modulation, 4 spare
    p_y = scratch[0]
    apply(loops, _EXP, log_p_y, p_y)
    expm1 = scratch[1]
    if near or gradient:
        apply(loops, _EXPM1, log_p_y, expm1)
    if what == 0:  # the focal loss
        modulation = np.empty((0, 0), z.dtype)
        if gamma != 0.0:
            argument, modulation = scratch[2].reshape((n, 1)), scratch[3].reshape((n, 1))
            _libm_modulation(log_p_y, p_y, expm1, near, gamma, argument, loops, scratch[4:])
            apply(loops, _EXP, argument, modulation)
        return focal_loss64(log_p_y, modulation, weights, reduction, log_base, normalizer, per_row)
    if gamma != 0.0:  # the modulation's argument of exp in the last column, beside p's
        _libm_modulation(log_p_y, p_y, expm1, near, gamma, work, loops, scratch[4:])
    e = _exp_of_work(loops, work)  # p, then the modulation (p_y for gamma = 0: unused)
    focal_gradient64(
        e, labels, log_p_y, p_y, expm1, gamma, weights, reduction, log_base, normalizer, grad
    )
    return True, 0.0


_CALLS = types.SimpleNamespace(**{name: globals()[name] for name in __all__})
"""The public functions as the Python side (``_small_label_families``) calls them. Tests
spy on the calls by replacing this namespace's attributes, never the module's, which
the compiled functions look up when Numba compiles them."""
