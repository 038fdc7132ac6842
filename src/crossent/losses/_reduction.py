"""Reductions of per-example losses, and the (total, normaliser) pair for exact averaging.

A weighted mean over a batch is ``sum(loss) / sum(example weights)``. Averaging such
means over micro-batches or devices is wrong unless the normalisers are equal;
``reduction='parts'`` returns both numbers, so callers sum totals and normalisers
across steps or ranks and divide once.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from .._xp import (
    Array,
    accumulation_dtype,
    astype_narrowing,
    device,
    finalize,
    narrowed,
    numpy_errstate,
    numpy_sum_dtype,
    reduce_sum,
    reshape,
    where_zero,
)

__all__ = [
    "LossParts",
    "reduce_loss",
    "scale_for_reduction",
    "weighted_gradient",
    "weighted_term",
]


class LossParts(NamedTuple):
    """A loss as ``(total, normalizer)``: add these across batches, then divide once.

    ``total`` is the sum of the per-example losses (in the requested unit);
    ``normalizer`` the sum of the example weights (the count of non-ignored examples
    without class weights). ``mean()`` gives what ``reduction='mean'`` would, but
    where the total itself passes the float range (row losses near ``1e308``; two
    rows of ``1.7e308`` make the total ``inf``), ``mean()`` is ``inf`` and
    ``'mean'`` the finite quotient (``1.7e308``), formed by scaling.

    Both are plain numbers of the loss's dtype, so a part past its range cannot be
    held: where the weights make one overflow (class weight 3 on a row of loss
    ``1.7e308``: a total of 5.1e308; class weights of ``5.7e307`` on 4 rows: a
    normaliser of 2.28e308), or make one subnormal, the loss raises an
    :class:`~crossent.InputError` rather than return ``inf`` (whose quotient would be
    ``inf``, 0 or NaN); ``'mean'`` takes such weights exactly. Divide the weights by one
    common factor in every batch whose parts are added: the mean does not change. A
    part is refused where the same weights divided by a power of two give it finite;
    without weights (nothing to scale) a total past the range is ``inf``, as ``'sum'``
    is, and so is a total that is ``inf`` because a row's loss is.

    Examples
    --------
    >>> import crossent
    >>> a = crossent.softmax_cross_entropy([[2.0, 0.0]], [0], reduction="parts")
    >>> b = crossent.softmax_cross_entropy([[0.0, 3.0], [1.0, 1.0]], [1, 0], reduction="parts")
    >>> whole = crossent.softmax_cross_entropy([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]], [0, 1, 0])
    >>> bool(abs((a.total + b.total) / (a.normalizer + b.normalizer) - whole) < 1e-15)
    True
    """

    total: Any
    normalizer: Any

    def mean(self) -> Any:
        """``total / normalizer``, and 0 when the normaliser is 0 (every example ignored)."""
        return self.total / self.normalizer if self.normalizer else self.normalizer * 0.0


def weighted_term(coefficient: Array, value: Array, *, xp: ModuleType) -> Array:
    """``coefficient * value`` with ``0 * inf = 0``: a term of weight 0 is absent.

    Both ``where`` branches are evaluated, so the non-finite values beside a coefficient
    of 0 are replaced before the product (no NaN, no floating-point warning, and a zero
    gradient through them). A finite value is kept at a coefficient of 0, so autograd's
    derivative in the coefficient there is the value (:math:`d(cv)/dc = v`: a class weight
    of 0 still has the gradient of its rows' loss; it was 0). A
    NumPy product past the float range is ``inf`` without NumPy's overflow warning: the
    softmax losses' far-row guard (``_far_gaps``) forms such rows again (a hostile pass:
    ``label_smoothing`` with class weights on logits of +-1e308 warned first, an error
    under ``-W error``, although the loss, 1.5e307, is finite).
    """
    if type(coefficient) is np.ndarray and type(value) is np.ndarray:
        with np.errstate(over="ignore"):
            if np.count_nonzero(coefficient) == coefficient.size:
                return coefficient * value  # no coefficient is 0 (issue 13: no where)
            return coefficient * np.where(coefficient != 0, value, 0)
    kept = (coefficient != 0) | xp.isfinite(value)
    with numpy_errstate(value, xp, over="ignore"):  # (array-api-strict: NumPy's warning)
        return coefficient * where_zero(kept, value, xp=xp)


def weighted_gradient(coefficient: Array, value: Array, *, xp: ModuleType) -> Array:
    """:func:`weighted_term` of a gradient: a coefficient of 0 gives ``coefficient * 0``
    (a zero of the coefficient's sign) on every namespace, as the NumPy branch and the
    compiled kernels give it.

    The generic branch's ``coefficient * value`` is a zero of the value's sign there: a
    weight of 0 beside a negative gradient gave ``-0.0`` on array-api-strict and JAX
    and ``+0.0`` on NumPy and torch (a hostile pass, issue 13). Equal numbers either
    way; one sign, one set of bits. (Not for a loss whose derivative in the coefficient
    is taken: that derivative is 0 here where the coefficient is 0.)
    """
    product = weighted_term(coefficient, value, xp=xp)
    if type(product) is np.ndarray:
        return product
    return xp.where(coefficient != 0, product, coefficient * 0.0)


def _safe_divide(total: Any, normalizer: Array, *, xp: ModuleType) -> Array:
    """``total / normalizer``, and 0 where the normaliser is not above 0 (every example
    ignored); NaN where it is NaN. One rule for both branches."""
    if _one_numpy_number(normalizer):
        # A Python branch, not two ``where`` (issue 13: per-call overhead):
        # ``normalizer * 0.0`` is a 0 of its dtype, or NaN for a NaN normaliser.
        return total / normalizer if normalizer > 0 else normalizer * 0.0
    # ``not <= 0`` rather than ``> 0``: a NaN normaliser (a traced label that is no class,
    # issue 13) is divided by, giving NaN as the NumPy branch does, not a silent 0
    divided = ~(normalizer <= 0)
    return xp.where(divided, total / xp.where(divided, normalizer, 1.0), xp.zeros_like(total))


def _one_numpy_number(x: object) -> bool:
    """Whether ``x`` is a NumPy scalar or 0-d array."""
    return isinstance(x, np.generic | np.ndarray) and x.ndim == 0


def reduce_loss(
    loss: Array,
    normalizer: Array,
    *,
    reduction: str,
    xp: ModuleType,
    log_base: float | None,
    dtype: Any,
) -> Any:
    """Apply ``reduction`` to per-example ``loss`` (nats) and convert to the unit."""
    if reduction == "none":
        if loss.dtype != dtype:
            loss = astype_narrowing(loss, dtype, xp=xp)
        return finalize(loss, xp=xp, log_base=log_base)
    flat = reshape(loss, (-1,), xp=xp)
    with numpy_errstate(flat, xp, over="ignore"):  # (a total past the range is inf)
        total = reduce_sum(flat, xp=xp, out_dtype=dtype)
    if reduction == "sum":
        return finalize(total, xp=xp, log_base=log_base)
    if reduction == "parts":
        return LossParts(
            total=finalize(total, xp=xp, log_base=log_base),
            normalizer=finalize(normalizer, xp=xp, log_base=None),
        )
    mean = _safe_divide(total, normalizer, xp=xp)
    return finalize(
        _mean_past_range(mean, total, flat, normalizer, xp=xp), xp=xp, log_base=log_base
    )


def _mean_past_range(
    mean: Any, total: Any, flat: Array, normalizer: Array, *, xp: ModuleType
) -> Any:
    """``mean``, or where the total rounded to the dtype overflowed while the float64
    (accumulation dtype) total did not, that total's quotient rounded once.

    A hostile pass: three float32 rows of loss 2e38 (hinge, sigmoid, focal on PyTorch)
    had the mean ``inf``, their total of 6e38 having been rounded to float32 before the
    division; the mean is 2e38. A float64 total past the range is the sum of the losses
    scaled by :math:`2^{-k}` (:func:`_scaled_mean`). Elsewhere ``mean`` is returned as it
    is (the same bits).
    """
    if type(flat) is np.ndarray:
        if not (math.isinf(total) and math.isfinite(normalizer)):
            return mean  # (``math``'s tests of a NumPy scalar: per-call overhead, issue 13)
        with np.errstate(over="ignore"):
            wide = np.add.reduce(flat, dtype=numpy_sum_dtype(flat.dtype))
        if total.dtype == wide.dtype or not np.isfinite(wide):
            return _scaled_mean(mean, flat, normalizer)
        return narrowed(
            np.asarray(_safe_divide(wide, wide.dtype.type(normalizer), xp=xp)), total.dtype
        )[()]
    acc = accumulation_dtype(total.dtype, xp=xp, device=device(flat))
    if acc == total.dtype:
        if total.dtype != xp.float64:
            return mean
        # as _scaled_mean: the sum of 2^-k times the losses, its quotient times 2^k
        k = 1 + int(flat.shape[0]).bit_length()
        scaled = _safe_divide(xp.sum(flat * 2.0**-k), normalizer, xp=xp)
        with numpy_errstate(scaled, xp, over="ignore"):
            return xp.where(xp.isinf(total), scaled * 2.0**k, mean)
    wide = _safe_divide(xp.sum(flat, dtype=acc), xp.astype(normalizer, acc), xp=xp)
    return xp.where(xp.isinf(total), xp.astype(wide, total.dtype), mean)


def _scaled_mean(mean: Any, flat: np.ndarray, normalizer: Any) -> Any:
    r"""``mean``, or where every loss is finite but their sum is past the range even in
    the accumulation dtype, :math:`(2^{-k}\sum_i \ell_i / n)\,2^k` (:math:`2^k \ge`
    twice the count of losses): the quotient of the unbounded sum, rounded once.

    A hostile pass (issue 13): float64 ``multiclass_hinge_loss`` of rows of loss
    ``[1.7e308, 0, 1.7e308]`` had the mean ``inf`` (and NumPy's overflow warning); the
    mean is 1.1333e308, as ``softmax_cross_entropy`` gave. Scaling by a power of 2
    changes no rounding of the sum (its terms below :math:`2^{-k}` of the smallest
    normal only lose bits far below the total's ulp)."""
    if not np.isfinite(flat).all():
        return mean
    k = 1 + int(flat.size).bit_length()
    acc = np.dtype(numpy_sum_dtype(flat.dtype))
    scaled = np.add.reduce(np.ldexp(flat.astype(acc, copy=False), -k))
    with numpy_errstate(scaled, None, over="ignore"):  # (a mean past the range: inf)
        wide = np.ldexp(np.asarray(_safe_divide(scaled, acc.type(normalizer), xp=np)), k)
    return narrowed(wide, mean.dtype)[()]


def scale_for_reduction(
    normalizer: Array, *, reduction: str, xp: ModuleType, log_base: float | None
) -> Any:
    """The factor by which per-example gradients are multiplied for ``reduction``."""
    scale: Any = 1.0
    if reduction == "mean":
        one = 1.0 if _one_numpy_number(normalizer) else xp.ones_like(normalizer)
        scale = _safe_divide(one, normalizer, xp=xp)
    if log_base is not None:
        scale = scale / log_base
    return scale
