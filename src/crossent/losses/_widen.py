r"""Exact answers for NumPy float16/float32 logits off the fused path (issue 13).

The generic (Array API) path computes in the compute dtype: float32 for float16 and
float32 logits, with NumPy's naive sums along a strided class axis. A row's loss then
carries the rounding of :math:`z - m` times :math:`|z - m|` through ``exp`` (a confident
row's loss of :math:`e^{-40}` lost some 1000 float32 ulps at 32000 classes), far from
the fused kernels' correctly rounded float64 statistics. Two ways back, chosen per call
by the public function (``_batch.prepared_by``'s ``widen``) before its body runs:

* :func:`relayout_labels` (the softmax cross-entropy of integer labels and its gradient,
  where only the layout keeps the fused kernels out: logits not C-contiguous, the
  classes not on the last axis, a non-native byte order): the call on a C-contiguous,
  classes-last copy of the logits, which the fused path takes: the bits of that
  contiguous call, the gradient moved back to the caller's axis order.
* :func:`upcast` (every other call of a softmax-family loss on such logits: soft-capping,
  or a loss without a fused path): the same call on the logits converted to float64
  (the other arrays as given: they promote to float64 exactly, and their checks, such
  as a target row's sum, keep their own dtype's tolerance), its result rounded to
  float32, the dtype the call returned before. Each per-row value is then the float64
  call's, correctly rounded.

Both cost a copy of the logits (float64 for :func:`upcast`, 2x their float32 size, and
the generic path's temporaries in float64). Arrays of other libraries are left as they
are; NumPy bfloat16 (``ml_dtypes``) logits are not taken by the losses at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import check_out
from ._reduction import LossParts

__all__ = ["Widened", "relayout_labels", "upcast"]

_LOW = frozenset(np.dtype(t).char for t in (np.float16, np.float32))
"""The logits dtypes computed in float32 (characters, as ``_softmax`` compares them)."""
_RESULT = np.dtype(np.float32)


@dataclass
class Widened:
    """A call to make instead (``args``, ``kwargs``) and how to finish its result."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    logits: np.ndarray  # the caller's
    out: Any = None  # the caller's ``out`` buffer, taken out of ``kwargs``
    axis: int | None = None  # the caller's class axis when the call moved it last

    def finish(self, result: Any) -> Any:
        """The caller's result from the widened call's: float32, in the caller's layout,
        written into ``out`` when one was given."""
        gradient = isinstance(result, np.ndarray) and result.ndim == self.logits.ndim
        if self.axis is not None and gradient:  # the classes back in place
            result = np.moveaxis(result, -1, self.axis)
        result = _narrow(result)
        if self.out is None:
            return result
        check_out(self.out, self.logits, dtype=_RESULT)
        self.out[...] = result
        return self.out


def _narrow(result: Any) -> Any:
    """``result`` (an array, a NumPy scalar or :class:`LossParts`) in float32."""
    if isinstance(result, LossParts):
        return LossParts(_narrow(result.total), _narrow(result.normalizer))
    if isinstance(result, np.ndarray):
        return result if result.dtype == _RESULT else result.astype(_RESULT)
    if isinstance(result, np.floating):
        return _RESULT.type(result)
    return result


def _low_precision(args: tuple[Any, ...]) -> bool:
    """Whether a call's positional arrays compute in float32: NumPy logits of float16 or
    float32 (native or not), and every other positional argument a NumPy array that is
    not of a wider float (integer labels, float16/float32 targets or teacher); anything
    else (a list, another library, float64) keeps today's path."""
    if not args or type(args[0]) is not np.ndarray or args[0].dtype.char not in _LOW:
        return False
    for other in args[1:]:
        if type(other) is not np.ndarray:
            return False
        kind = other.dtype.kind
        if kind not in "iub" and not (kind == "f" and other.dtype.itemsize <= 4):
            return False
    return True


def _without_out(kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    if "out" not in kwargs:
        return kwargs, None
    rest = dict(kwargs)
    return rest, rest.pop("out")


def upcast(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Widened | None:
    """The call with float64 logits, when they are NumPy float16/float32 (see the module
    docstring); None otherwise."""
    if not _low_precision(args):
        return None
    logits = args[0]
    rest, out = _without_out(kwargs)
    return Widened((logits.astype(np.float64), *args[1:]), rest, logits, out)


def relayout_labels(
    fused: Callable[[np.ndarray, Any, dict[str, Any]], bool],
) -> Callable[[tuple[Any, ...], dict[str, Any]], Widened | None]:
    """The ``widen`` of the softmax cross-entropy of integer labels (and its gradient).

    ``fused(logits, axis, kwargs)``: whether the fused kernels would take C-contiguous,
    native logits with the classes last under these keywords (no soft-capping, the axis
    an int naming an axis, not empty). Then the call on such a copy
    (:func:`relayout_labels`'s copy: ``np.ascontiguousarray(np.moveaxis(...))``, the
    logits' dtype, ``axis=-1``); else, for float16/float32 NumPy logits, :func:`upcast`.
    A call the fused path takes as it is gives None (it goes on as it is).
    """

    def widen(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Widened | None:
        if not _low_precision(args) or len(args) != 2 or "fused" in kwargs:
            return None  # (a call that does not fit: the public function names it)
        logits, labels = args
        axis = kwargs.get("axis", -1)
        if not fused(logits, axis, kwargs):
            return upcast(args, kwargs)
        native = logits.dtype.isnative and labels.dtype.isnative
        last = axis % logits.ndim == logits.ndim - 1
        if native and last and logits.flags.c_contiguous:
            return None  # the fused path's own call
        moved = np.ascontiguousarray(np.moveaxis(logits, axis, -1))
        if not moved.dtype.isnative:
            moved = moved.astype(moved.dtype.newbyteorder("="))
        if not labels.dtype.isnative:
            labels = labels.astype(labels.dtype.newbyteorder("="))
        rest, out = _without_out(kwargs)
        rest["axis"] = -1
        return Widened((moved, labels), rest, logits, out, axis=axis % logits.ndim)

    return widen
