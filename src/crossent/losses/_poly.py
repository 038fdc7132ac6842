r"""Poly-1 loss (Leng et al. 2022): cross-entropy plus its first polynomial term, and its gradient.

Expanding :math:`-\log p_y = \sum_{j \ge 1} (1 - p_y)^j / j` in powers of
:math:`1 - p_y`, PolyLoss perturbs the leading coefficient by :math:`\varepsilon`:

.. math:: L = w_y\,\big[-\log p_y + \varepsilon\,(1 - p_y)\big],
          \qquad
          \frac{\partial L}{\partial z} = w_y\,(1 + \varepsilon\,p_y)\,(p - e_y)

since :math:`\partial(-\log p_y)/\partial z = p - e_y` and
:math:`\partial p_y/\partial z = p_y\,(e_y - p)`. :math:`1 - p_y` is formed as
``-expm1(log p_y)``, so it keeps its digits when :math:`p_y` is near 1.

For :math:`\varepsilon < 0` the two terms have opposite signs and cancel as
:math:`p_y \to 1`: with :math:`u = -\log p_y`, :math:`L/w_y = u - |\varepsilon|(1 -
e^{-u})`, which is :math:`u^2/2` at :math:`\varepsilon = -1` (a loss of :math:`9 \times
10^{-36}` came out as 0, one of :math:`5.45 \times 10^{-25}` 9e-5 relative off; issue 13,
branch hostilenumpy10). It is computed as :math:`(1 + \varepsilon)\,u + |\varepsilon|\,
g(u)`, both terms non-negative, with the gap :math:`g(u) = u - (1 - e^{-u}) = u +
\operatorname{expm1}(-u) \ge 0` by its alternating Taylor series for :math:`u < 1`
(:func:`near_gap`) and as written above (it keeps all but a bit or two of its digits
there, :math:`g(u) \ge u/e`).

This module is all a new loss needs: the batch machinery (``_batch.py``) and the
labelled softmax (``_terms.labelled_softmax``) do validation, ignored rows, class
weights, the reduction and the layout, and ``_batch.extends`` gives the prepare step the
keywords of ``_batch.labelled_batch``, so the module declares only ``epsilon``.

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

from .._checks import check_scalar
from .._xp import Array
from . import _small_label_families as _small
from ._batch import LabelBatch, extends, labelled_batch, prepared_by
from ._terms import LabelledSoftmax, labelled_softmax
from ._weight_scale import weight_scaled
from ._widen import blocked

__all__ = ["near_gap", "poly1_cross_entropy", "poly1_cross_entropy_grad", "poly_terms"]


@dataclass
class _Poly:
    """One validated call: the labelled softmax and :math:`\varepsilon`."""

    softmax: LabelledSoftmax
    epsilon: float


@extends(labelled_batch, hide=("base",))
def _poly(given: LabelBatch, /, *, epsilon: float = 1.0) -> _Poly:
    r"""Check one call of :func:`poly1_cross_entropy` (or its gradient); :math:`\log p_y`.

    Its keywords after ``epsilon`` are those of :func:`._batch.labelled_batch` but
    ``base`` (the polynomial term is not a log-probability).
    """
    eps = check_scalar(epsilon, name="epsilon", low=-1.0)
    return _Poly(labelled_softmax(given), eps)


_SERIES = tuple(1.0 / math.factorial(k) for k in range(19, 1, -1))
"""The Taylor coefficients :math:`1/k!` of :func:`near_gap`, :math:`k = 19, ..., 2`."""


def near_gap(u: Any) -> Any:
    r""":math:`g(u) = u + \operatorname{expm1}(-u) = \sum_{k \ge 2} (-u)^k / k!` for
    :math:`0 \le u \le 1` by Horner's rule, in the dtype of ``u``.

    The series alternates with falling terms, so it keeps its digits where the formula
    cancels; its terms past :math:`k = 19` are below :math:`10^{-17}` of :math:`g`.
    Arithmetic only: ``u`` may be an array of any namespace or a Numba scalar
    (``_small_label_numba.poly_loss64`` compiles this very function).
    """
    total = _SERIES[0]
    for k in range(1, len(_SERIES)):
        total = _SERIES[k] - u * total
    return u * u * total


def poly_terms(log_p_y: Array, epsilon: float, *, xp: ModuleType) -> Array:
    r"""The poly-1 loss of each row before its weight: :math:`-\log p_y + \varepsilon
    (1 - p_y)`, for :math:`\varepsilon < 0` as :math:`(1 + \varepsilon)\,u +
    |\varepsilon|\,g(u)` (module docstring; ``_small_label_numba.poly_loss64`` is this,
    row by row, with the same operations in the same order)."""
    expm1 = xp.expm1(log_p_y)
    if epsilon >= 0.0:
        return -log_p_y - epsilon * expm1
    u = -log_p_y
    gap = xp.where(u < 1.0, near_gap(xp.minimum(u, 1.0)), u + expm1)
    return gap if epsilon == -1.0 else (1.0 + epsilon) * u - epsilon * gap


def _own(epsilon: float) -> tuple[float]:
    """The checked poly-1 option (for the small calls)."""
    return (check_scalar(epsilon, name="epsilon", low=-1.0),)


_SMALL = _small.small_family(_poly, _own, dtypes="fd")
"""Small float32 and float64 calls (issue 13): ``_small_label_families``."""
_WIDEN = blocked(labelled=True)
"""Large float16/float32 NumPy calls (issue 13): float64 in blocks of rows (``_widen``)."""


@weight_scaled
@prepared_by(_poly, shortcut=_SMALL.shortcut(_small.poly_loss), widen=_WIDEN)
def poly1_cross_entropy(poly: _Poly) -> Any:
    r"""Poly-1 loss (PolyLoss) of integer labels under logits.

    .. math:: L_i = w_{y_i}\,\big[-\log p_{i,y_i} + \varepsilon\,(1 - p_{i,y_i})\big],
              \qquad p_i = \operatorname{softmax}(z_i)

    Parameters
    ----------
    logits : array, shape (*batch, C) with the classes along ``axis``
    labels : integer array, shape (*batch)
    epsilon : float >= -1, optional
        :math:`\varepsilon`, the perturbation of the first polynomial coefficient
        (default 1, the paper's choice for ImageNet); 0 gives
        :func:`softmax_cross_entropy`. At least -1, so the coefficient of
        :math:`1 - p_y` stays non-negative and the loss with it. Below 0 the two
        terms are summed without their cancellation as :math:`p_y \to 1` (at
        :math:`\varepsilon = -1` the loss is about :math:`(1 - p_y)^2/2`): every row
        to an ulp or two of itself, beyond the rounding of the logits' gaps
        :math:`z_c - z_y` (a relative :math:`|z_c - z_y|\,2^{-53}` in each
        :math:`e^{z_c - z_y}`, as in :func:`softmax_cross_entropy`: logits
        ``[-37.4, 42.0]``, a gap of 79, left 126 ulps at :math:`\varepsilon = -1`).
    axis, weight, ignore_index, reduction, validate
        As in :func:`softmax_cross_entropy`; the mean divides by the summed label
        weights.

    Returns
    -------
    array or LossParts
        The polynomial term is not a log-probability, so there is no ``base``.

    Raises
    ------
    InputError, InputTypeError
        As in :func:`softmax_cross_entropy`, and ``epsilon < -1``.

    See Also
    --------
    poly1_cross_entropy_grad, softmax_cross_entropy, softmax_focal_loss

    References
    ----------
    .. [1] Z. Leng, M. Tan, C. Liu, E. D. Cubuk, X. Shi, S. Cheng and D. Anguelov,
       "PolyLoss: A Polynomial Expansion Perspective of Classification Loss
       Functions", ICLR 2022, arXiv:2204.12511.

    Examples
    --------
    >>> import math, crossent
    >>> z, y = [[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], [0, 2]
    >>> ce = crossent.softmax_cross_entropy(z, y, reduction="none")
    >>> poly = crossent.poly1_cross_entropy(z, y, epsilon=2.0, reduction="none")
    >>> bool(abs(poly[0] - ce[0] - 2.0 * (1 - math.exp(-ce[0]))) < 1e-15)  # p_y = e^{-CE}
    True
    >>> ce_mean = crossent.softmax_cross_entropy(z, y)
    >>> bool(abs(crossent.poly1_cross_entropy(z, y, epsilon=0.0) - ce_mean) < 1e-15)
    True
    """
    softmax = poly.softmax
    # -log p_y + eps (1 - p_y); a label of weight 0 is absent even where log p_y = -inf.
    return softmax.reduce(poly_terms(softmax.log_p_y, poly.epsilon, xp=softmax.batch.xp))


@weight_scaled
@prepared_by(
    _poly,
    twin=poly1_cross_entropy,
    shortcut=_SMALL.shortcut(_small.poly_gradient),
    widen=_WIDEN,
)
def poly1_cross_entropy_grad(poly: _Poly) -> Array:
    r"""Gradient of :func:`poly1_cross_entropy` with respect to ``logits``.

    .. math:: \frac{\partial L_i}{\partial z_i} = w_{y_i}\,(1 + \varepsilon\,p_{i,y_i})\,
              (p_i - e_{y_i})

    Returns
    -------
    array, the shape of ``logits``
        Scaled for the reduction; zero on ignored rows. Errors as in
        :func:`poly1_cross_entropy`.

    Examples
    --------
    >>> import numpy as np, crossent
    >>> g = crossent.poly1_cross_entropy_grad([[0.0, 0.0]], [0], epsilon=1.0)
    >>> print(g)  # (1 + 1/2) (p - e_y), p = (1/2, 1/2)
    [[-0.75  0.75]]
    """
    softmax, eps = poly.softmax, poly.epsilon
    # 1 + eps p_y = (1 + eps) + eps (p_y - 1), p_y - 1 = expm1(log p_y): 1 - p_y for
    # eps = -1 without the cancellation of 1 - p_y as p_y -> 1 (issue 13).
    factor = (1.0 + eps) + eps * softmax.batch.xp.expm1(softmax.log_p_y)
    return softmax.finish_gradient(softmax.batch.weigh(factor))
