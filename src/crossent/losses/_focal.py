r"""Softmax focal loss from logits with integer labels, and its gradient.

With :math:`\ell = \log p_y \le 0` and :math:`m = (1 - p_y)^\gamma`:

.. math:: \mathrm{FL} = -w_y\,m\,\ell, \qquad
          \frac{\partial\,\mathrm{FL}}{\partial z} = w_y\,m\,(p - e_y)\,(1 - \gamma\,p_y\,r),
          \qquad r = \frac{\ell}{1 - p_y} \in [-\infty, -1]

:math:`\log(1 - p_y)` is ``log1mexp``\ (:math:`\ell`) and :math:`r` uses ``expm1``, so
the loss and its gradient are finite for saturated logits and any :math:`\gamma \ge 0`
(at :math:`p_y = 1` both are 0). With :math:`\gamma = 0` this is the weighted
cross-entropy and its gradient :math:`w_y(p - e_y)`.

Small calls (issue 13, "Small inputs"): float32 and float64 NumPy logits with int64
labels are answered by ``_small_label_families`` (float64 in one compiled call where
NumPy's exp and log are the C library's, else compiled arithmetic between NumPy's own
ufuncs), with the values of the code below bit for bit; anything else, or a suspect
row, runs the code below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .._checks import check_scalar
from .._xp import Array, ones_like
from . import _small_label_families as _small
from ._batch import LabelBatch, extends, labelled_batch, prepared_by
from ._terms import LabelledSoftmax, labelled_softmax
from ._weight_scale import weight_scaled
from ._widen import blocked

__all__ = ["softmax_focal_loss", "softmax_focal_loss_grad"]

_LOG_HALF = -math.log(2.0)


def _log1mexp(a: Array, *, xp: ModuleType) -> Array:
    """``log(1 - exp(a))`` for ``a <= 0`` (Maechler 2012): ``-inf`` at 0."""
    near = a > _LOG_HALF
    if type(a) is np.ndarray:
        # NumPy (issue 13: per-call overhead): the far branch alone when no entry is near
        # 0, and scalars rather than filled arrays; the same operation on every entry.
        if not near.any():
            return np.log1p(-np.exp(a))
        a_near = np.where(near, a, _LOG_HALF)
        negative = np.where(a_near < 0, -np.expm1(a_near), 1.0)
        near_value = np.where(a_near < 0, np.log(negative), -math.inf)
        return np.where(near, near_value, np.log1p(-np.exp(np.where(near, _LOG_HALF, a))))
    a_near = xp.where(near, a, xp.full_like(a, _LOG_HALF))
    a_far = xp.where(near, xp.full_like(a, _LOG_HALF), a)
    negative = xp.where(a_near < 0, -xp.expm1(a_near), xp.ones_like(a_near))
    near_value = xp.where(a_near < 0, xp.log(negative), xp.full_like(a, -math.inf))
    return xp.where(near, near_value, xp.log1p(-xp.exp(a_far)))


def _modulation(softmax: LabelledSoftmax, gamma: float) -> Array:
    r"""The focal modulation :math:`(1 - p_y)^\gamma` (keepdims), in log space."""
    xp = softmax.batch.xp
    if gamma == 0:  # plain cross-entropy: skip 0 * log(0) at p_y = 1
        return ones_like(softmax.log_p_y, xp=xp)
    modulation = xp.exp(gamma * _log1mexp(softmax.log_p_y, xp=xp))
    if type(modulation) is np.ndarray:
        return modulation
    # Autograd (PyTorch, JAX): where p_y underflows to 0 the modulation is 1 (its value
    # here too) and its derivative gamma m p_y/(1 - p_y) log p_y is 0, as in the gradient
    # twin; formed by the chain rule, its upstream -log p_y gamma overflowed first and
    # met the 0 as NaN (issue 13, branch hostile1: float32 logits [-1e38, 0, 1e38] of
    # label 0 at gamma = 2, a -inf label logit): the constant 1 there.
    lost = xp.exp(softmax.log_p_y) == 0
    return xp.where(lost, xp.ones_like(modulation), modulation)


@dataclass
class _Focal:
    """One validated call: the labelled softmax, gamma and the modulation (keepdims)."""

    softmax: LabelledSoftmax
    gamma: float
    modulation: Array  # (1 - p_y)^gamma


@extends(labelled_batch)
def _focal(given: LabelBatch, /, *, gamma: float = 2.0) -> _Focal:
    r"""Check one call of :func:`softmax_focal_loss` (or its gradient); :math:`\log p_y`.

    Its keywords after ``gamma`` are those of :func:`._batch.labelled_batch`.
    """
    g = check_scalar(gamma, name="gamma", low=0.0)
    softmax = labelled_softmax(given)
    return _Focal(softmax, g, _modulation(softmax, g))


def _own(gamma: float) -> tuple[float]:
    """The checked focal option (for the small calls)."""
    return (check_scalar(gamma, name="gamma", low=0.0),)


_SMALL = _small.small_family(_focal, _own, dtypes="fd")
"""Small float32 and float64 calls (issue 13): ``_small_label_families``."""
_WIDEN = blocked(labelled=True)
"""Large float16/float32 NumPy calls (issue 13): float64 in blocks of rows (``_widen``)."""


@weight_scaled
@prepared_by(_focal, shortcut=_SMALL.shortcut(_small.focal_loss), widen=_WIDEN)
def softmax_focal_loss(focal: _Focal) -> Any:
    r"""Softmax focal loss (Lin et al. 2017) of integer labels under logits.

    .. math:: \mathrm{FL}_i = -w_{y_i}\,(1 - p_{i,y_i})^\gamma \log p_{i,y_i},
              \qquad p_i = \operatorname{softmax}(z_i)

    Parameters
    ----------
    logits : array, shape (*batch, C) with the classes along ``axis``
    labels : integer array, shape (*batch)
    gamma : float >= 0, optional
        Focusing parameter; 0 gives :func:`softmax_cross_entropy`.
    axis, weight, ignore_index, reduction, base, validate
        As in :func:`softmax_cross_entropy`; ``weight`` plays the role of the per-class
        :math:`\alpha`, and the mean divides by the summed label weights.

    Returns
    -------
    array or LossParts
        In nats (or ``base``); 0 for ignored rows and labels of weight 0. ``'mean'``
        of an empty batch, of rows all ignored, or of labels all of weight 0 is 0
        with a zero gradient, where PyTorch's weighted mean
        (``F.cross_entropy``, ``gamma=0``) is NaN (as
        :func:`crossent.torch.softmax_focal_loss`).

    Raises
    ------
    InputError, InputTypeError
        As in :func:`softmax_cross_entropy`, and ``gamma < 0``.

    See Also
    --------
    softmax_focal_loss_grad, sigmoid_focal_loss, softmax_cross_entropy

    %(focal_references)s

    Examples
    --------
    >>> import crossent
    >>> z, y = [[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], [0, 2]
    >>> bool(crossent.softmax_focal_loss(z, y, gamma=0.0) == crossent.softmax_cross_entropy(z, y))
    True
    >>> bool(crossent.softmax_focal_loss(z, y) < crossent.softmax_cross_entropy(z, y))
    True
    """
    ls = focal.softmax
    # A label of weight 0 is absent, even where log p_y = -inf (issue 10, item 7).
    return ls.reduce(-ls.log_p_y, weight=ls.batch.weigh(focal.modulation))


@weight_scaled
@prepared_by(
    _focal,
    twin=softmax_focal_loss,
    shortcut=_SMALL.shortcut(_small.focal_gradient),
    widen=_WIDEN,
)
def softmax_focal_loss_grad(focal: _Focal) -> Array:
    r"""Gradient of :func:`softmax_focal_loss` with respect to ``logits``.

    .. math:: \frac{\partial\,\mathrm{FL}}{\partial z} = w_y\,(1 - p_y)^\gamma\,(p - e_y)\,
              \Big(1 - \gamma\,p_y\,\frac{\log p_y}{1 - p_y}\Big)

    Returns
    -------
    array, the shape of ``logits``
        Zero on ignored rows and on rows of weight 0 (its errors: those of
        :func:`softmax_focal_loss`).

    Examples
    --------
    >>> import numpy as np, crossent
    >>> g = crossent.softmax_focal_loss_grad([[50.0, 0.0, 0.0]], [0], gamma=0.5)
    >>> bool(np.isfinite(g).all())  # saturated: finite, not NaN
    True
    """
    ls, g = focal.softmax, focal.gamma
    xp, log_p_y = ls.batch.xp, ls.log_p_y
    p_y = xp.exp(log_p_y)
    # r = p_y log p_y / (1 - p_y): -1 at p_y = 1 (the limit), 0 at p_y = 0 (not 0 * -inf)
    inside = (log_p_y < 0) & (p_y > 0)
    if type(inside) is np.ndarray and inside.all():  # no limit to take (issue 13)
        ratio = p_y * (log_p_y / -np.expm1(log_p_y))
        return ls.finish_gradient(ls.batch.weigh(focal.modulation) * (1 - g * ratio))
    safe_log = xp.where(inside, log_p_y, -xp.ones_like(log_p_y))
    ratio = xp.where(inside, p_y * (safe_log / -xp.expm1(safe_log)), xp.zeros_like(log_p_y))
    ratio = xp.where(log_p_y < 0, ratio, -xp.ones_like(log_p_y))
    return ls.finish_gradient(ls.batch.weigh(focal.modulation) * (1 - g * ratio))
