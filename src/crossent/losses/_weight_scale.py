r"""Weights far from 1, taken at a power of two of their size (a hostile review).

Every weighted loss is equivariant in its weights: with :math:`w = 2^k w'`,

.. math:: \frac{\sum_i \omega_i \ell_i}{\sum_i \omega_i}
          = \frac{\sum_i \omega'_i \ell_i}{\sum_i \omega'_i},\qquad
          \sum_i \omega_i \ell_i = 2^k \sum_i \omega'_i \ell_i,

and the same for the gradients. The kernels form :math:`\omega_i\ell_i`,
:math:`\sum_i\omega_i` and their quotient as they are, which is exact for weights of
ordinary size but not at the ends of the range: class weights of ``1e308`` made
:math:`\sum_i\omega_i` overflow (a ``'mean'`` of NaN where it is 3.64, a
``'sum'`` that raised Python's ``OverflowError`` in the far-row pass), weights of
``1e-310`` or ``5e-324`` formed :math:`\omega_i\ell_i` among the subnormals (a
``'mean'`` of 3.4 where it is 3.64, gradients of ``inf`` and NaN), and float32 logits
cast weights past ``3.4e38`` to ``inf`` (NaN) and weights below ``1.4e-45`` to 0 (a
``'mean'`` of 0 and a zero gradient).

:func:`weight_scaled` wraps a public loss: where the largest weight is a finite
positive float outside :math:`[2^{-32}, 2^{32})` (and none is negative, so that the
checks still name the values as given), the call is made with :math:`w' = 2^{-k}w`,
:math:`k` the exponent of the largest weight (:math:`\max w' \in [1, 2)`), and a result
other than a ``'mean'`` is multiplied by :math:`2^k` (``np.ldexp``: rounded once; an
``inf`` only where the true value overflows). The scalings are exact but for weights
more than :math:`2^{1021}` below the largest, which become subnormal, as they would be
beside a largest weight of 1. A ``'parts'`` whose total or normaliser is finite at
:math:`w'` but past the range at :math:`w`, or subnormal there (digits lost), is refused
(an ``InputError``): such parts cannot be added to others or divided (``inf`` beside a
finite total gave a mean of 0; weights of ``5e-324`` a mean of 0.25 where it is 0.371);
so is a part that weights of ordinary size make ``inf`` where the weights divided by a
power of two leave it finite (:func:`_refuse_parts_past_range`: class weight 3 on a row
of loss ``1.7e308``).
Weights of ordinary size, integer weights and calls
without weights go through untouched (one ``dict`` look-up and, with weights, one
maximum over them).
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from .._xp import Array, check_dense, numpy_errstate
from ..errors import InputError
from ._reduction import LossParts

__all__ = ["scale_result", "scaled_weight", "weight_scaled"]

_LOW, _HIGH = 2.0**-32, 2.0**32
"""Largest weights in ``[_LOW, _HIGH)`` are used as given."""

_STEP = 100
"""The largest power of two applied at once to an array of another library: ``2**100``
is a float32 (``2**1075``, the largest shift, is no float64)."""


def _readable(value: Any) -> float | None:
    """``float(value)``, or None for a value that cannot be read (an array traced by
    ``jax.jit``, a meta tensor): such weights are used as given."""
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError, NotImplementedError):
        return None


def _float_extremes(weight: object, *, ordinary: bool = False) -> tuple[float, float] | None:
    """The smallest and largest weight, where ``weight`` is a nonempty real floating
    array (or a list of floats, or a float) whose largest is a finite positive float
    outside ``[_LOW, _HIGH)`` (anywhere with ``ordinary``); None otherwise (the checks
    deal with it)."""
    w: Any = weight
    if isinstance(weight, list | tuple | float):
        try:
            w = np.asarray(weight)
        except (TypeError, ValueError):
            return None
    if type(w) is np.ndarray:
        if w.dtype.kind != "f" or w.size == 0:
            return None
        top = float(np.maximum.reduce(w, axis=None))
        if (not ordinary and _LOW <= top < _HIGH) or not 0.0 < top < math.inf:
            return None  # (NaN fails the second test)
        return float(np.minimum.reduce(w, axis=None)), top
    import array_api_compat

    if not array_api_compat.is_array_api_obj(w):
        return None
    check_dense(w, name="weight")  # (a sparse tensor has no max to read)
    xp = array_api_compat.array_namespace(w)
    if array_api_compat.is_torch_array(w):
        w = w.detach()  # the values, not the graph (learnable weights: no autograd warning)
    if not xp.isdtype(w.dtype, "real floating") or array_api_compat.size(w) == 0:
        return None
    top_read = _readable(xp.max(w))
    if top_read is None or not 0.0 < top_read < math.inf:
        return None
    if not ordinary and _LOW <= top_read < _HIGH:
        return None
    low = _readable(xp.min(w))
    return None if low is None else (low, top_read)


def _times_power_of_two(x: Any, shift: int) -> Any:
    r""":math:`2^{\text{shift}} x` for an array of any library, in its dtype: NumPy's
    rounded once (``np.ldexp``), another library's by factors of at most
    :math:`2^{100}` (rounded once too, but where an intermediate is subnormal)."""
    if isinstance(x, np.ndarray | np.generic):
        with np.errstate(over="ignore", under="ignore"):
            return np.ldexp(x, shift)
    step = _STEP if shift > 0 else -_STEP
    xp = sys.modules.get(type(x).__module__.partition(".")[0])  # (array-api-strict warns)
    with numpy_errstate(x, xp, over="ignore", under="ignore"):
        while shift:
            part = step if abs(shift) > _STEP else shift
            x = x * 2.0**part
            shift -= part
    return x


def scaled_weight(weight: object) -> tuple[object, int]:
    """``(w', k)`` with ``weight`` :math:`= 2^k w'` and :math:`\\max w' \\in [1, 2)`, or
    ``(weight, 0)`` where the weights are used as given (module docstring)."""
    if (  # the common call, in one reduction (per-call overhead)
        type(weight) is np.ndarray
        and weight.dtype.kind == "f"
        and weight.size
        and _LOW <= float(np.maximum.reduce(weight, axis=None)) < _HIGH
    ):  # (as a float: float16 weights compared with 2**32 overflowed in the cast)
        return weight, 0
    extremes = _float_extremes(weight)
    if extremes is None or not extremes[0] >= 0.0:
        return weight, 0  # negative weights (or NaN): the checks name them as given
    shift = math.frexp(extremes[1])[1] - 1
    return _weight_times_power_of_two(weight, -shift), shift


def _weight_times_power_of_two(weight: Any, shift: int) -> Any:
    r""":math:`2^{\text{shift}} w` of weights as the caller gave them: an array of its
    library, or a list, tuple or Python float (a sigmoid's one weight) as a list."""
    if isinstance(weight, list | tuple | float):
        return _times_power_of_two(np.asarray(weight), shift).tolist()
    return _times_power_of_two(weight, shift)


def scale_result(result: Any, shift: int, *, out: Array | None = None) -> Any:
    r"""A loss or gradient of weights :math:`2^{-k}w` times :math:`2^k` (``shift``):
    each field of :class:`LossParts`; into ``out`` where the gradient was written
    there."""
    if isinstance(result, LossParts):
        return LossParts(
            total=_times_power_of_two(result.total, shift),
            normalizer=_times_power_of_two(result.normalizer, shift),
        )
    if out is not None and result is out:
        with np.errstate(over="ignore", under="ignore"):
            return np.ldexp(out, shift, out=out)
    return _times_power_of_two(result, shift)


def _check_parts_in_range(scaled: LossParts, parts: LossParts, shift: int) -> None:
    r"""An InputError where a part of ``reduction='parts'``, finite at the weights
    :math:`2^{-k}w`, is not exactly :math:`2^k` times that at :math:`w` (``shift``
    :math:`= k`): past the float range, or among the subnormals (digits lost).

    Such parts cannot be combined: weights of ``5.7e307`` on 4 rows gave a normaliser of
    ``inf`` beside a finite total, whose quotient (``LossParts.mean``) is 0.0 where the
    mean is 0.371, or ``inf / inf`` = NaN; weights of ``5e-324`` gave ``(5e-324,
    2e-323)``, a quotient of 0.25 (or a total of 0: the focal loss's). No pair of numbers
    of the dtype holds them, so there is none to return; the caller can scale the weights
    by one common factor (the mean does not change), for every batch whose parts are
    added.
    """
    for field in LossParts._fields:
        at_scale, value = _readable(getattr(scaled, field)), _readable(getattr(parts, field))
        if at_scale is None or value is None or not math.isfinite(at_scale):
            continue  # (a part that is inf or NaN at any scale is the loss's own)
        if math.isfinite(value) and math.ldexp(value, -shift) == at_scale:
            continue  # (the scaling was exact)
        import decimal  # (only here: an error's message)

        true = decimal.Decimal(at_scale) * decimal.Decimal(2) ** shift
        where = (
            "past the largest finite value"
            if math.isinf(value)
            else "below the smallest normal value (digits lost)"
        )
        raise InputError(
            f"`weight`: reduction='parts' cannot hold the {field} {true:.4e}, {where} of "
            "its dtype; scale `weight` by one common factor (e.g. divide it by its "
            "largest value) in every batch whose parts you add: the mean does not change"
        )


def _past_range(result: Any) -> bool:
    """Whether ``result`` is one number and ``+inf`` (a traced or meta one, which cannot
    be read, is taken as not)."""
    if isinstance(result, np.generic | np.ndarray):
        return result.ndim == 0 and bool(result == math.inf)
    if getattr(result, "ndim", None) != 0:
        return False
    detach = getattr(result, "detach", None)  # (torch: the value, without autograd's warning)
    return _readable(result if detach is None else detach()) == math.inf


def _finite_mean(
    public: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> Any:
    r"""A ``'mean'`` of ``inf`` made again with the weights :math:`2^{-k}w`, :math:`k`
    such that :math:`\max w' \in [\tfrac12, 1)`: the mean does not change, and no
    product :math:`\omega'_i\ell_i` passes the range where :math:`\ell_i` does not.

    A hostile pass (issue 13): class weight 2 on a row of loss ``1.7e308`` gave a mean of
    ``inf`` (the product overflowed before the sum was divided), where the weighted mean
    is ``1.13e308``; a sum past the range after that is the unweighted case
    (``_reduction._mean_past_range``). Only an ``inf`` mean with a weight of at least 1
    is made again (a loss that is ``inf`` is so twice)."""
    if not _past_range(result):
        return result
    weight = kwargs["weight"]
    extremes = _float_extremes(weight, ordinary=True)
    if extremes is None or not extremes[0] >= 0.0 or extremes[1] < 1.0:
        return result
    smaller = _weight_times_power_of_two(weight, -math.frexp(extremes[1])[1])
    return public(*args, **{**kwargs, "weight": smaller})


def _refuse_parts_past_range(
    public: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], parts: LossParts
) -> None:
    r"""An :class:`InputError` where a part of ``reduction='parts'`` is ``inf`` but finite
    with the weights :math:`2^{-k}w`, :math:`k` such that :math:`\max w' \in [\tfrac12, 1)`:
    the weights made it overflow (:func:`_check_parts_in_range`'s message).

    docsreader7 (issue 13): class weight 3 on a row of loss ``1.7e308`` gave a total of
    ``inf`` (its true value ``5.1e308``) beside a normaliser of 3, whose quotient
    (``LossParts.mean``) is ``inf`` where the mean is ``1.7e308``; weights outside
    :math:`[2^{-32}, 2^{32})` were refused already. A part that is ``inf`` at the smaller
    weights too is the loss's own (a row of loss ``inf``), and stays."""
    if not (_past_range(parts.total) or _past_range(parts.normalizer)):
        return
    weight = kwargs["weight"]
    extremes = _float_extremes(weight, ordinary=True)
    if extremes is None or not extremes[0] >= 0.0 or extremes[1] < 0.5:
        return
    shift = math.frexp(extremes[1])[1]
    smaller = _weight_times_power_of_two(weight, -shift)
    _check_parts_in_range(public(*args, **{**kwargs, "weight": smaller}), parts, shift)


def weight_scaled(public: Callable[..., Any]) -> Callable[..., Any]:
    """``public`` (a weighted loss or gradient) called with its weights scaled by a power
    of two where they are far from 1, and its result scaled back (module docstring).

    The wrapper keeps ``public``'s attributes (its signature, ``__wrapped__`` the body
    as :func:`._batch.prepared_by` makes it, the far-row guard's ``_common_path``) but
    its ``_front_door``, which a call without weights takes (one call fewer).
    """

    door = getattr(public, "_front_door", None)  # (a ``_batch.FrontDoor``: a lean path)
    if door is not None:
        shortcut, settle, past = door

    @functools.wraps(public)
    def call(*args: Any, **kwargs: Any) -> Any:
        weight = kwargs.get("weight")
        if weight is None:
            if door is None:
                return public(*args, **kwargs)
            # ``public(*args, **kwargs)`` with the calls between here and the lean path
            # made here (issue 13: a few tenths of a microsecond of a small call)
            result = shortcut(args, kwargs)
            if result is None:
                return past(*args, **kwargs)
            return result if settle is None else settle(result, args, kwargs)
        scaled, shift = scaled_weight(weight)
        given = kwargs
        if shift:
            kwargs = {**kwargs, "weight": scaled}
        result = public(*args, **kwargs)
        if kwargs.get("reduction", "mean") == "mean":
            return _finite_mean(public, args, kwargs, result)
        scaled_back = scale_result(result, shift, out=kwargs.get("out")) if shift else result
        if isinstance(result, LossParts):
            if shift:
                _check_parts_in_range(result, scaled_back, shift)
            _refuse_parts_past_range(public, args, given, scaled_back)
        return scaled_back

    wrapped = getattr(public, "__wrapped__", None)
    if wrapped is not None:
        call.__wrapped__ = wrapped
    call.__dict__.pop("_front_door", None)  # (``public``'s: no way past the weights' scaling)
    return call
