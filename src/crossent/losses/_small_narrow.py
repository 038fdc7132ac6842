"""The lean paths' float64 results rounded to float32 (issue 13, small inputs).

The lean paths compute float32 logits on float64 copies and round the result once to
float32 (:func:`narrow_for`), the value ``_xp.to_float32`` gives: a float64 past
float32's range is ``+-inf``, without NumPy's "overflow encountered in cast" warning
(an error under ``-W error``). ``_xp.to_float32`` casts an array under ``np.errstate``,
whose context manager alone took about 1.1 us of a 6 us call (a float32 gradient of
8 x 10). Here a float64 vector or matrix is cast by a compiled loop instead
(``_small_narrow_numba``, called past Numba's dispatcher: ``_entry_points``), which
rounds as NumPy's cast does and warns of nothing; any other result (a NumPy scalar,
:class:`~._reduction.LossParts`, an array of another rank or dtype), and every result
where Numba does not compile (``NUMBA_DISABLE_JIT``), goes to ``_xp.to_float32``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _xp
from . import _cpu_kernels
from ._entry_points import entry_point

__all__ = ["narrow_for", "narrowing_call", "to_float32"]

_FLOAT64 = np.dtype(np.float64)
_FLOAT32 = np.dtype(np.float32)
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_UNSET = object()


def narrow_for(logits: np.ndarray, result: Any) -> Any:
    """A small call's ``result`` (computed in float64) as the caller's ``logits`` get it:
    as it is for float64 logits, else float32 (:func:`to_float32`)."""
    return result if logits.dtype.char == _FLOAT64.char else to_float32(result)


def to_float32(result: Any) -> Any:
    """``_xp.to_float32(result)``: a float64 vector or matrix by the compiled cast, bit for
    bit NumPy's cast, without ``np.errstate``; a float64 scalar within float32's range
    (a reduced loss, the commonest) by ``np.float32``, as there, without the extra call."""
    if type(result) is np.float64 and -_FLOAT32_MAX <= result <= _FLOAT32_MAX:
        return np.float32(result)
    if type(result) is np.ndarray and result.dtype is _FLOAT64:
        cast = _CASTS.get(result.ndim, _UNSET)
        if cast is _UNSET:
            cast = _cast_of(result.ndim)
        if cast is not None:
            out = np.empty(result.shape, _FLOAT32)
            cast(result, out)  # type: ignore[operator]
            return out
    return _xp.to_float32(result)


def _cast_of(ndim: int) -> Callable[..., None] | None:
    """The compiled cast of float64 arrays of rank ``ndim`` (any layout) into C-contiguous
    float32 ones, or None (another rank; no JIT), kept."""
    cast = None
    if ndim in (1, 2) and _cpu_kernels.available():
        function, args = _narrowing(ndim)
        cast = entry_point(function, *args)
    _CASTS[ndim] = cast
    return cast


def narrowing_call() -> tuple[Callable[..., None], tuple[np.ndarray, np.ndarray]]:
    """``(narrow_matrix, args)``: the compiled cast of float64 matrices and arguments of
    the types its one overload takes (any layout, into C-contiguous float32), for a
    caller that calls it past the dispatcher (``_entry_points.kept_table``) on float64
    matrices into float32 ones of their shape (imports Numba)."""
    return _narrowing(2)


def _narrowing(ndim: int) -> tuple[Callable[..., None], tuple[np.ndarray, np.ndarray]]:
    """The compiled cast of rank ``ndim`` (1 or 2) and arguments of its overload's types."""
    from . import _small_narrow_numba as compiled

    function = compiled.narrow_vector if ndim == 1 else compiled.narrow_matrix
    some_layout = np.zeros((4,) * ndim)[(slice(None, None, 2),) * ndim]  # an 'A' array
    return function, (some_layout, np.zeros((2,) * ndim, _FLOAT32))


_CASTS: dict[int, Callable[..., None] | None] = {}
"""The compiled casts by rank (:func:`_cast_of`); None: ``_xp.to_float32``."""
