r"""The lean path of the soft-target softmax cross-entropy on small float64 inputs (issue 13).

``softmax_cross_entropy_with_targets`` and its gradient try :func:`target_loss` and
:func:`target_gradient` first (``prepared_by``'s ``shortcut``). They take a call the
label lean path's :func:`~._softmax.lean_call` takes (NumPy arrays, the options it
knows: ``axis`` naming the last one, ``label_smoothing``, ``reduction``,
``temperature``, ``z_loss``, ``base``, ``validate``; no class weights, no soft-capping)
whose logits and targets are both float64, of one shape, C-contiguous, aligned,
writable, in native byte order, with at most :data:`_cpu_kernels.SERIAL_ELEMENTS`
entries, when Numba is installed. Anything else returns None, and the full path runs.

The values are the full path's (``prepare_softmax_targets``, ``SoftmaxProblem.loss``,
``softmax_gradient``) bit for bit, by the float64 hybrid of ``_softmax_small``: the
compiled calls do the generic path's arithmetic in its order and NumPy's np.exp and
np.log1p run between them on the very values the generic path gives them:

* loss: ``shift_targets64`` (the targets screened, then ``shift_rows64``: the logits
  screened, :math:`m`, :math:`\sigma = (z - m)/T`), np.exp, ``target_rows64``
  (``rest_of_rows64``, then :math:`A = \sum_c\tilde t_c` and :math:`B = \sum_c\tilde
  t_c\sigma_c`), np.log1p (:math:`\ell`), ``target_loss64`` (:math:`A\ell - B +
  \lambda\,\mathrm{LSE}^2`, then the reduction): three compiled calls and two ufuncs,
  as the label hybrid;
* gradient: the same up to :math:`\ell`, then ``subtract_rows64`` and np.exp for
  :math:`p`, then ``target_gradient64``.

Validation costs no pass of its own: a row that the full path's checks could refuse
(a NaN, ``+inf`` or a row of ``-inf`` in the logits; a target entry outside
:math:`[0, 1]` or a row that does not sum to 1 within ``row_sum_tolerance``) returns
None whether ``validate`` is on or off, so the full path names the error (or, unchecked,
computes what it computes). So does a call whose values the full path would make warn
or not finite.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from .._checks import row_sum_tolerance
from .._xp import compat_numpy
from . import _cpu_kernels, _softmax_small
from ._batch import LossOptions
from ._reduction import LossParts
from ._softmax_small import REDUCTIONS as _REDUCTIONS  # (its numbering of the reductions)
from ._terms import smoothing_coefficients

__all__ = [
    "compiled_functions",
    "computed",
    "float64_rows",
    "hybrid_functions",
    "in_shape",
    "reduced",
    "scale_arguments",
    "target_gradient",
    "target_loss",
    "tolerance",
]

_FLOAT64 = np.dtype(np.float64).char
_NO_ROWS = np.empty(0)
"""The per-row output of a reduced loss (the compiled call writes none)."""


_Statistics = tuple[tuple[int, ...], LossOptions, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""A lean call's row statistics: the logits' shape, the options, then :func:`_rows`'s
``(shifted, targets, rows, ell)`` (a plain tuple: a named one costs a microsecond)."""


def target_loss(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``softmax_cross_entropy_with_targets(*args, **kwargs)`` by the lean path, or None."""
    found = _statistics(args, kwargs)
    if found is None:
        return None
    shape, options, _, _, rows, ell = found
    return reduced(
        compiled_functions().target_loss64, (rows, ell, options.z_loss), shape[:-1], options
    )


def target_gradient(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``softmax_cross_entropy_with_targets_grad(*args, **kwargs)`` by the lean path, or
    None."""
    found = _statistics(args, kwargs)
    if found is None:
        return None
    shape, options, shifted, t, rows, ell = found
    hybrid_functions().subtract_rows64(shifted, ell)
    p = np.exp(shifted)  # probs: exp(sigma - ell), into a fresh array as there
    eps = options.label_smoothing
    keep, spread = smoothing_coefficients(eps, t.shape[-1])
    ok = compiled_functions().target_gradient64(
        p,
        t,
        rows,
        ell,
        keep,
        spread,
        bool(eps),
        options.z_loss,
        options.temperature,
        *scale_arguments(options),
    )
    return in_shape(p, shape) if ok else None


def scale_arguments(options: LossOptions) -> tuple[int, float]:
    """``(reduction, log_base)`` of the compiled gradients' ``reduction_scale``."""
    return _REDUCTIONS[options.reduction], options.log_base or 0.0


def in_shape(gradient: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An N x C ``gradient`` in the caller's ``shape``."""
    return gradient if len(shape) == 2 else gradient.reshape(shape)


def _statistics(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Statistics | None:
    """The row statistics of a call the lean path takes, or None."""
    return computed(_call(args, kwargs), _rows)


def computed(call: tuple[Any, Any, Any] | None, compute: Callable[..., Any]) -> Any:
    """``(shape, settings, *compute(*call))`` for a taken ``call`` ``(first, second,
    settings)`` (``shape``: the first array's), or None when the call is not taken or
    ``compute`` hands it on (returns None)."""
    if call is None:
        return None
    found = compute(*call)
    return None if found is None else (call[0].shape, call[2], *found)


def _call(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, LossOptions] | None:
    """``(logits, targets, options)`` of a call the lean path takes, or None."""
    call = _lean_call()(args, kwargs)  # arrays, options, the class axis last
    if call is None:
        return None
    logits, targets, options = call[:3]
    if logits.dtype.char != _FLOAT64 or targets.dtype.char != _FLOAT64:
        return None
    if logits.shape != targets.shape or logits.size > _cpu_kernels.SERIAL_ELEMENTS:
        return None
    if not (logits.flags.carray and targets.flags.carray and _cpu_kernels.available()):
        return None
    return logits, targets, options


def _rows(
    logits: np.ndarray, targets: np.ndarray, options: LossOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    r"""``(shifted, targets, rows, ell)`` of a call :func:`_call` takes (N x C views;
    :math:`A` and :math:`B` in ``rows``); None when a row is suspect."""
    classes = logits.shape[-1]
    two_d = logits.ndim == 2
    z = logits if two_d else logits.reshape(-1, classes)
    t = targets if two_d else targets.reshape(-1, classes)
    compiled = compiled_functions()
    shifted = np.empty(z.shape)
    rows = np.empty((6, z.shape[0]))
    if not compiled.shift_targets64(z, t, tolerance(classes), options.temperature, shifted, rows):
        return None
    eps = options.label_smoothing
    keep, spread = smoothing_coefficients(eps, classes)
    compiled.target_rows64(np.exp(shifted), shifted, t, rows, keep, spread, bool(eps))
    return shifted, t, rows, np.log1p(rows[_REST])


def float64_rows(z: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray] | None:
    r"""``softmax_rows`` of float64 ``z`` (N x C) up to its log1p, by the label hybrid:
    ``(shifted, rows)`` with :math:`\sigma = (z - m)/T` and, in the 4 x N ``rows``,
    :math:`m/T` (``TOP``) and the argument of log1p (``REST``); None when a row is
    suspect."""
    shifted = np.empty(z.shape)
    rows = np.empty((4, z.shape[0]))
    if not compiled_functions().shift_logits64(z, temperature, shifted, rows):
        return None
    hybrid_functions().rest_of_rows64(np.exp(shifted), shifted, rows, False)
    return shifted, rows


def hybrid_functions() -> ModuleType:
    """``_small_numba``, the label hybrid's compiled functions (imports Numba)."""
    return _softmax_small.compiled_calls()


def reduced(
    loss: Any, arguments: tuple[Any, ...], batch_shape: tuple[int, ...], options: LossOptions
) -> Any:
    """The loss from ``loss(*arguments, reduce_with)``, a compiled call ending in
    ``reduce_rows64(values, reduce_with)``; None where it hands on.

    The result as ``reduce_loss`` gives it: per row in the batch shape (a NumPy scalar
    for 0-d), a NumPy float64, or :class:`LossParts`.
    """
    reduction = _REDUCTIONS[options.reduction]
    n = batch_shape[0] if len(batch_shape) == 1 else int(np.prod(batch_shape))
    per_row = np.empty(n) if reduction == 0 else _NO_ROWS
    ok, value = loss(*arguments, (reduction, options.log_base or 0.0, per_row))
    if not ok:
        return None
    if reduction == 0:
        return per_row if len(batch_shape) == 1 else per_row.reshape(batch_shape)[()]
    if reduction == 3:
        return LossParts(total=np.float64(value), normalizer=np.float64(n))
    return np.float64(value)


def tolerance(classes: int) -> float:
    """``row_sum_tolerance`` of float64 rows of ``classes`` entries, kept by ``classes``."""
    try:
        return _TOLERANCES[classes]
    except KeyError:
        found = row_sum_tolerance(np.float64, classes, xp=compat_numpy)
    if len(_TOLERANCES) < 256:
        _TOLERANCES[classes] = found
    return found


_TOLERANCES: dict[int, float] = {}
_REST = 2
"""``_small_numba.REST``: the row of the argument of log1p (imported with Numba)."""


@functools.cache
def _lean_call() -> Callable[..., Any]:
    """``_softmax.lean_call`` (``_softmax`` imports this module: imported on first use)."""
    from ._softmax import lean_call

    return lean_call


@functools.cache
def compiled_functions() -> ModuleType:
    """``_small_targets_numba``, imported on first use (it imports Numba)."""
    from . import _small_targets_numba

    return _small_targets_numba
