r"""Multi-class hinge losses: the margin philosophy the seeds contrast with cross-entropy.

Cross-entropy is never satisfied: a correct example always has some loss and some
gradient. A hinge loss is zero, with zero gradient, once the true class wins by the
margin :math:`\Delta`:

.. math::

    \text{Crammer-Singer: } L = \max\big(0,\ \Delta + \max_{c \ne y} z_c - z_y\big),
    \qquad
    \text{Weston-Watkins: } L = \sum_{c \ne y} \max(0,\ \Delta + z_c - z_y)

The gradients are subgradients; at a kink (a term exactly 0) crossent takes 0, and
among tied runners-up Crammer-Singer takes the first: :func:`multiclass_hinge_loss_grad`
and the derivative of :func:`multiclass_hinge_loss` under ``jax.grad`` or
``torch.autograd`` alike (the loss is formed as a sum of the counted margins, whose
derivative is this subgradient; ``max(0, .)`` would take JAX's and PyTorch's half at
ties). PyTorch's ``multi_margin_loss`` also takes 0 at a kink; Optax's
``multiclass_hinge_loss`` (``max`` over the row) takes half under ``jax.grad``.

Small calls (issue 13, "Small inputs"): float32 or float64 NumPy logits with int64
labels and no ``ignore_index`` are answered by ``_small_label_families`` (two compiled
calls) with the values of the code below bit for bit; anything else, or a suspect row,
runs the code below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import check_choice, check_scalar
from .._far_row_gradients import wants_gradient
from .._xp import (
    Array,
    astype,
    cannot_copy_to_host,
    full_like,
    numpy_errstate,
    row_max,
    row_sum,
    take_along_last,
    where_zero,
)
from . import _small_label_families as _small
from ._batch import Batch, LabelBatch, class_mask, extends, labelled_batch, prepared_by

__all__ = ["multiclass_hinge_loss", "multiclass_hinge_loss_grad"]


_VARIANTS = ("crammer_singer", "weston_watkins")


@dataclass
class _Hinge:
    """One validated call: the batch, the scores (classes last), margins and target mask."""

    batch: Batch
    z: Array
    margins: Array  # delta + z_c - z_y for rivals c; -inf on the target and on -inf rivals
    is_target: Array
    variant: str
    undefined: Array  # (keepdims) rows with a NaN or entirely -inf: NaN (validate=False)
    poison: Array | None  # (keepdims) NaN on a traced label that is no class, else 0; None
    rival: Array | None  # Crammer-Singer: the first highest-scored rival per row; else None


@extends(labelled_batch, hide=("weight", "base"))
def _hinge(given: LabelBatch, /, *, margin: float = 1.0, variant: str = "crammer_singer") -> _Hinge:
    """Check one call of :func:`multiclass_hinge_loss` (or its gradient): the margins.

    Its keywords after ``variant`` are those of :func:`._batch.labelled_batch` but
    ``weight`` and ``base`` (a margin is in the units of the scores).
    """
    delta = check_scalar(margin, name="margin", low=0.0)
    check_choice(variant, _VARIANTS, name="variant")
    xp = given.batch.xp
    z, safe = given.values, given.labels.safe
    is_target = class_mask(safe, z.shape[-1], xp=xp)
    index = safe[..., None]
    # The NumPy shortcut for a matrix, whose IndexError (an unchecked label that is no
    # class) names the axis the namespace's names; other ranks keep the namespace's.
    z_y = take_along_last(z, index, xp=xp) if z.ndim == 2 else xp.take_along_axis(z, index, axis=-1)
    # A rival scored -inf never violates the margin, even against a target of -inf (whose
    # margin against any finite rival is +inf): -inf - (-inf) would be NaN (issue 10, item 12).
    never = is_target | (z == -math.inf)
    rivals = where_zero(~never, z, xp=xp)  # no -inf - (-inf) evaluated anywhere
    minus = full_like(z, -math.inf, xp=xp)
    with numpy_errstate(z, xp, over="ignore"):  # a margin past 1.8e308 is +inf: a loss of inf
        margins = xp.where(never, minus, _margin(delta, rivals, z_y, xp=xp))
    # Crammer-Singer's rival by the scores, not the margins: rounding can tie the margins
    # of rivals whose scores differ (float64 [0, 1e-20, 2e-20], label 0: margins 1 and 1,
    # the gradient went to 1e-20); where they are tied, the first, as np.argmax.
    rival = xp.argmax(xp.where(never, minus, z), axis=-1) if variant == "crammer_singer" else None
    # A row with a NaN, or entirely -inf (no score to compare: validate=False let it
    # through), has no hinge: NaN, as the softmax losses give it (a hostile pass: 0
    # and a zero gradient; a NaN row's gradient was finite)
    top = row_max(z, xp=xp)
    undefined = ~(top > -math.inf)
    poison = None
    if cannot_copy_to_host(safe):  # a traced label that is no class: NaN row weight (_batch)
        bad = xp.isnan(given.labels.row_weight)
        undefined = undefined | bad
        poison = where_zero(bad, full_like(given.labels.row_weight, math.nan, xp=xp), xp=xp)
    return _Hinge(given.batch, z, margins, is_target, variant, undefined, poison, rival)


def _margin(delta: float, z_c: Array, z_y: Array, *, xp: Any) -> Array:
    r"""The margin :math:`\Delta + z_c - z_y` in the dtype of the scores (``delta``
    rounded to it, as NumPy 2 rounds a Python float): :math:`(z_c + t) + \tau`, where
    :math:`t + \tau = \Delta - z_y` exactly (Knuth's TwoSum, once per row).

    Near the kink the margin is correctly rounded: there :math:`z_c` and :math:`-t` are
    within a factor of 2, so :math:`z_c + t` is exact (Sterbenz) and only the last sum
    rounds. Elsewhere :math:`|z_c + t| \ge \max(|z_c|, |t|)/2` and the margin is within
    about an ulp of itself, so its sign, the gradient's support, is always right.

    Main formed :math:`\Delta + (z_c - z_y)`, whose difference's rounding (up to
    :math:`0.75\,\mathrm{ulp}(\Delta)` near the kink) was lost: float64 ``[1, 1e-20]``
    (label 0, margin 1) gave a loss of 0 and a zero gradient for ``1e-20``. Before it
    (hostile21), ``(delta + z_c) - z_y`` rounded :math:`\Delta` away against large
    scores (float32 ``[1e8, 1e8]``: 0 for 1). The pair costs :math:`O(N)`, the
    :math:`N \times C` work is the two sums it always was (TwoSum of every difference
    cost 1.5x-2.3x the call, ``benchmarks/bench_hinge_margin_ab.py``).

    A row whose :math:`\Delta - z_y` is not finite (overflow, a score of
    :math:`\pm\infty` or NaN) takes :math:`t = -z_y,\ \tau = \Delta`: the old
    :math:`(z_c - z_y) + \Delta`, whose infinities and NaNs are the ones documented.
    ``z_y`` (keepdims) is broadcast against ``z_c``; ``xp`` is the namespace of both.
    """
    d = full_like(z_y, delta, xp=xp)  # delta rounded to the dtype, an array for TwoSum
    with numpy_errstate(z_y, xp, over="ignore", invalid="ignore"):
        t = d - z_y
        back = t - d
        tau = (d - (t - back)) + ((-z_y) - back)
    finite = xp.isfinite(tau)  # NaN where t (or z_y) is not finite
    t = xp.where(finite, t, -z_y)
    tau = xp.where(finite, tau, d)
    margins = z_c + t
    if type(margins) is np.ndarray:  # in place: NumPy elides no temporary against (N, 1)
        return np.add(margins, tau, out=margins)
    return margins + tau


def _own(margin: float, variant: str) -> tuple[float, bool]:
    """The checked hinge options (for the small calls): the margin, and whether the
    variant is Weston-Watkins."""
    delta = check_scalar(margin, name="margin", low=0.0)
    return delta, check_choice(variant, _VARIANTS, name="variant") == "weston_watkins"


_SMALL = _small.small_family(_hinge, _own, dtypes="fd")
"""Small float32 and float64 calls (issue 13): ``_small_label_families``."""


@prepared_by(_hinge, shortcut=_SMALL.shortcut(_small.hinge_loss))
def multiclass_hinge_loss(h: _Hinge) -> Any:
    r"""Multi-class hinge loss of integer labels under scores (logits).

    .. math:: L^{\mathrm{CS}} = \max\big(0,\ \Delta + \max_{c \ne y} z_c - z_y\big),
              \qquad L^{\mathrm{WW}} = \sum_{c \ne y} \max(0,\ \Delta + z_c - z_y)

    Parameters
    ----------
    logits : array, shape (*batch, C)
        Class scores; no probabilities are implied.
    labels : integer array, shape (*batch)
    margin : float >= 0, optional
        :math:`\Delta`, default 1.
    variant : {'crammer_singer', 'weston_watkins'}, optional
        Crammer-Singer penalises the strongest rival; Weston-Watkins every rival
        inside the margin.
    axis, ignore_index, reduction, validate
        As in :func:`softmax_cross_entropy`; the mean is over non-ignored rows.

    Returns
    -------
    array or LossParts
        In the units of the scores (not nats: no ``base``). A row with a NaN, or
        entirely ``-inf`` (let through by ``validate=False``), is NaN, its gradient too.

    Raises
    ------
    InputError, InputTypeError
        As in :func:`softmax_cross_entropy`, and a bad ``margin`` or ``variant``.

    See Also
    --------
    multiclass_hinge_loss_grad, softmax_cross_entropy
    torch.nn.functional.multi_margin_loss : Weston-Watkins divided by ``C``.

    References
    ----------
    .. [1] K. Crammer and Y. Singer, "On the Algorithmic Implementation of Multiclass
       Kernel-based Vector Machines", JMLR 2 (2001) 265-292.
    .. [2] J. Weston and C. Watkins, "Support Vector Machines for Multi-Class Pattern
       Recognition", ESANN 1999.

    Examples
    --------
    >>> import crossent
    >>> crossent.multiclass_hinge_loss([[3.0, 1.0, 0.5]], [0])  # wins by 2 > 1: satisfied
    np.float64(0.0)
    >>> print(crossent.multiclass_hinge_loss([[3.0, 2.5, 2.8]], [0], variant="weston_watkins"))
    1.3
    """
    xp = h.batch.xp
    # The sum of the margins that count, as a where, not max(0, .): its derivative is
    # the documented subgradient under any autodiff (jax.grad, torch.autograd), which
    # split a tie in half (a kink: 0.5 per term, 1/(2C) for Crammer-Singer's max over
    # the row; tied rivals: half each) where multiclass_hinge_loss_grad takes 0 and the
    # first rival. The same values: a NaN margin (+inf against +inf) counts, as in max.
    counted = ~(h.margins <= 0)
    if h.rival is not None:  # Crammer-Singer
        counted = counted & class_mask(h.rival, h.z.shape[-1], xp=xp)
    with numpy_errstate(h.margins, xp, over="ignore"):  # (Weston-Watkins: a sum past the range)
        loss = row_sum(where_zero(counted, h.margins, xp=xp), xp=xp)
    loss = xp.where(h.undefined, full_like(loss, math.nan, xp=xp), loss)
    if h.poison is not None:
        # The where above passes no gradient to the scores (jax.grad of a bad row was 0):
        # add sum_c 0 * z_c (NaN * z_c in a bad row), whose gradient is NaN there.
        finite = where_zero(xp.isfinite(h.z), h.z, xp=xp)
        loss = loss + row_sum(finite * h.poison, xp=xp)
    return h.batch.reduce(loss[..., 0])


@prepared_by(_hinge, twin=multiclass_hinge_loss, shortcut=_SMALL.shortcut(_small.hinge_gradient))
def multiclass_hinge_loss_grad(h: _Hinge) -> Array:
    r"""A subgradient of :func:`multiclass_hinge_loss` with respect to ``logits``.

    .. math::

        g^{\mathrm{CS}} = [L > 0]\,(e_{r} - e_y),\quad r = \arg\max_{c \ne y} z_c;
        \qquad
        g^{\mathrm{WW}}_c = [\Delta + z_c - z_y > 0] \ (c \ne y),\quad
        g^{\mathrm{WW}}_y = -\textstyle\sum_{c \ne y} g^{\mathrm{WW}}_c

    Zero once the margin is met: satisfied examples stop pulling, unlike
    cross-entropy's :math:`p - y`.

    Returns
    -------
    array, the shape of ``logits``
        Entries in {-C+1, ..., 1} before the reduction's scale;
        :func:`multiclass_hinge_loss` lists the errors. Of a PyTorch tensor that
        requires a gradient: part of its graph, with the derivative 0 (the subgradient
        is piecewise constant), as ``torch.sign`` and the other ``*_grad`` functions.

    Examples
    --------
    >>> import crossent
    >>> print(crossent.multiclass_hinge_loss_grad([[3.0, 2.5, 2.8]], [0]))
    [[-1.  0.  1.]]
    """
    xp, z = h.batch.xp, h.z
    violated = h.margins > 0
    if h.rival is not None:  # Crammer-Singer
        is_rival = class_mask(h.rival, z.shape[-1], xp=xp)
        any_violated = (
            np.logical_or.reduce(violated, axis=-1, keepdims=True)  # np.any without dispatch
            if type(violated) is np.ndarray
            else xp.any(violated, axis=-1, keepdims=True)
        )
        pull = astype(is_rival & any_violated, z.dtype, xp=xp)
    else:
        pull = astype(violated, z.dtype, xp=xp)
    count = row_sum(pull, xp=xp)
    grad = xp.where(h.is_target, -count, pull)
    grad = xp.where(h.undefined, full_like(grad, math.nan, xp=xp), grad)
    if wants_gradient(z):
        # Part of the logits' graph with a zero derivative (the same values), as PyTorch's
        # piecewise-constant ops (sign, floor, round) and the other ``*_grad`` functions
        # of a tensor that requires a gradient: ``torch.where`` passes none to ``z``
        # (issue 13, branch focal3: a tensor with no graph, so a penalty on it raised
        # "does not require grad" in ``backward``).
        grad = xp.where(xp.ones_like(grad, dtype=xp.bool), grad, z)
    return h.batch.finish_gradient(grad)
