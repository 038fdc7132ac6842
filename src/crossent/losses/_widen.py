r"""Exact answers for NumPy float16/float32 logits off the fused path (issue 13).

The generic (Array API) path computes in the compute dtype: float32 for float16 and
float32 logits, with NumPy's naive sums along a strided class axis. A row's loss then
carries the rounding of :math:`z - m` times :math:`|z - m|` through ``exp`` (a confident
row's loss of :math:`e^{-40}` lost some 1000 float32 ulps at 32000 classes), far from
the fused kernels' correctly rounded float64 statistics. Two ways back, chosen per call
by the public function (``_batch.prepared_by``'s ``widen``) before its body runs:

* :func:`relayout` (the softmax cross-entropy of integer labels or of soft targets and
  their gradients, where only the layout keeps the call off its own path: arrays not
  C-contiguous, the classes not on the last axis, a non-native byte order): the call
  on a C-contiguous, classes-last copy of the logits (and targets) in their dtype,
  which the fused (or the small) path takes: the bits of that contiguous call, the
  gradient moved back to the caller's axis order.
* :func:`upcast` (every other call of focal, poly-1 or distillation on such logits,
  and the two above with soft-capping): the same call on a float64, C-contiguous,
  classes-last copy of the logits (targets or a teacher of their shape copied
  classes-last too, in their own dtype: they promote to float64 exactly, and their
  checks, such as a target row's sum, keep their dtype's tolerance), its result rounded
  to float32, the dtype the call returned before. Each per-row value is then the float64
  call's, correctly rounded, and the same bits for every layout of the same values.

Both cost a copy of the logits (float64 for :func:`upcast`, 2x their float32 size, and
the generic path's temporaries in float64; the other arrays' copies where their layout
is not already classes-last and C-contiguous). Arrays of other libraries are left as they
are; NumPy bfloat16 (``ml_dtypes``) logits are not taken by the losses at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import check_out
from ._reduction import LossParts

__all__ = ["Widened", "narrow", "narrow_for", "relayout", "upcast"]

_LOW = frozenset(np.dtype(t).char for t in (np.float16, np.float32))
"""The logits dtypes computed in float32 (characters, as ``_softmax`` compares them)."""
_RESULT = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64).char


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
        result = narrow(result)
        if self.out is None:
            return result
        check_out(self.out, self.logits, dtype=_RESULT)
        self.out[...] = result
        return self.out


def narrow(result: Any) -> Any:
    """``result`` (an array, a NumPy scalar, :class:`LossParts` or None) in float32: also
    the small paths' float64 results for float32 logits (issue 13)."""
    if type(result) is np.float64:  # (the commonest first: a small call's mean or sum)
        return _RESULT.type(result)
    if isinstance(result, LossParts):
        return LossParts(narrow(result.total), narrow(result.normalizer))
    if isinstance(result, np.ndarray):
        return result if result.dtype == _RESULT else result.astype(_RESULT)
    if isinstance(result, np.floating):
        return _RESULT.type(result)
    return result


def narrow_for(logits: np.ndarray, result: Any) -> Any:
    """A small call's ``result`` (computed in float64) as the caller's ``logits`` get it:
    as it is for float64 logits, else :func:`narrow`'s float32."""
    return result if logits.dtype.char == _FLOAT64 else narrow(result)


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


def _class_axis(logits: np.ndarray, kwargs: dict[str, Any]) -> int | None:
    """The call's class axis, normalised, or None when it names none (the call's own
    checks then name the problem)."""
    axis = kwargs.get("axis", -1)
    ndim = logits.ndim
    if type(axis) is not int or not -ndim <= axis < ndim:
        return None
    return axis % ndim


def _classes_last(array: np.ndarray, axis: int, dtype: Any = None) -> np.ndarray:
    """A C-contiguous copy of ``array`` with ``axis`` last, in ``dtype`` (None: its own,
    in native byte order)."""
    moved = np.moveaxis(array, axis, -1)
    return np.ascontiguousarray(moved, dtype=dtype or moved.dtype.newbyteorder("="))


def _native(array: np.ndarray) -> np.ndarray:
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def _widened(args: tuple[Any, ...], kwargs: dict[str, Any], dtype: Any) -> Widened | None:
    """The call on C-contiguous, classes-last copies of the logits (in ``dtype``; None:
    theirs) and of the other float arrays of their shape (targets, a teacher), with
    ``axis=-1``; where the axis names none or the shapes differ (an error the call
    names), the logits converted to ``dtype`` (None: no call)."""
    logits = args[0]
    rest = dict(kwargs)
    out = rest.pop("out", None)
    axis = _class_axis(logits, kwargs)
    floats = [a.dtype.kind == "f" for a in args[1:]]
    misfit = any(f and a.shape != logits.shape for f, a in zip(floats, args[1:], strict=True))
    if axis is None or misfit:
        if dtype is None:
            return None
        return Widened((logits.astype(dtype), *args[1:]), rest, logits, out)
    others = [
        _classes_last(a, axis) if f else _native(a) for f, a in zip(floats, args[1:], strict=True)
    ]
    rest["axis"] = -1
    return Widened((_classes_last(logits, axis, dtype), *others), rest, logits, out, axis)


def upcast(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Widened | None:
    """The call on float64, C-contiguous, classes-last logits, when they are NumPy
    float16/float32 (see the module docstring); None otherwise."""
    if not _low_precision(args):
        return None
    return _widened(args, kwargs, np.float64)


def relayout(
    fused: Callable[[np.ndarray, Any, dict[str, Any]], bool],
) -> Callable[[tuple[Any, ...], dict[str, Any]], Widened | None]:
    """The ``widen`` of the softmax cross-entropy (of integer labels or of soft targets)
    and its gradient.

    ``fused(logits, axis, kwargs)``: whether the call would take its own (fused or
    kernel) path on C-contiguous, native logits with the classes last under these
    keywords (no soft-capping, the axis an int naming an axis, not empty). Then the call
    on such a copy of the logits' dtype (:func:`_widened`, the targets copied so too);
    else, for float16/float32 NumPy logits, :func:`upcast`. A call whose arrays are
    already so (C-contiguous, native, the classes last) gives None: it goes on as it is.
    """

    def widen(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Widened | None:
        if not _low_precision(args) or len(args) != 2 or "fused" in kwargs:
            return None  # (a call that does not fit: the public function names it)
        logits, other = args
        axis = kwargs.get("axis", -1)
        if not fused(logits, axis, kwargs):
            return upcast(args, kwargs)
        native = logits.dtype.isnative and other.dtype.isnative
        last = axis % logits.ndim == logits.ndim - 1
        laid_out = logits.flags.c_contiguous and (
            other.dtype.kind != "f" or other.flags.c_contiguous
        )
        if native and last and laid_out:
            return None  # the call's own path
        return _widened(args, kwargs, None)

    return widen
