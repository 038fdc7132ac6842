r"""The lean path of the soft-target softmax cross-entropy on small inputs (issue 13).

``softmax_cross_entropy_with_targets`` and its gradient try :func:`target_loss` and
:func:`target_gradient` first (``prepared_by``'s ``shortcut``). They take a call the
label lean path's :func:`~._softmax.lean_call` takes (NumPy arrays, the options it
knows: ``axis`` naming the last one, ``label_smoothing``, ``reduction``,
``temperature``, ``z_loss``, ``base``, ``validate``; no class weights, no soft-capping)
whose logits and targets are both float64 or both float32, of one shape, C-contiguous,
aligned, writable, in native byte order, with at most :data:`_cpu_kernels.SERIAL_ELEMENTS`
entries, when Numba is installed. Anything else returns None, and the full path runs.

The values are the full path's (``prepare_softmax_targets``, ``SoftmaxProblem.loss``,
``softmax_gradient``) bit for bit, by the float64 hybrid of ``_softmax_small``: the
compiled calls do the generic path's arithmetic in its order, in float64 (float32
inputs on float64 copies, below), and NumPy's np.exp and np.log1p run between them on
the very values the generic path gives them:

* loss: ``shift_targets64`` (the targets screened, then ``shift_rows64``: the logits
  screened, :math:`m`, :math:`\sigma = (z - m)/T`), np.exp, ``target_rows64``
  (``rest_of_rows64``, then :math:`A = \sum_c\tilde t_c` and :math:`B = \sum_c\tilde
  t_c\sigma_c`), np.log1p (:math:`\ell`), ``target_loss64`` (:math:`A\ell - B +
  \lambda\,\mathrm{LSE}^2`, then the reduction): three compiled calls and two ufuncs,
  as the label hybrid;
* gradient: the same up to :math:`\ell`, then ``subtract_rows64`` and np.exp for
  :math:`p`, then ``target_gradient64`` (given np.expm1 of :math:`-\ell` only where
  ``target_rows64`` flagged a row that may have :math:`p_c > 1/2`).

float32 logits and targets are computed so on float64 copies of theirs (the few entries
a small call has; the target rows' sums still checked within float32's tolerance), the
result rounded to float32: the float64 call's values correctly rounded, as the full
path gives float32 logits off its fused kernels (``_widen.upcast``), not the float32
generic path's (some float32 ulps off, more on a gradient entry that cancels).

The compiled functions are called by their entry points, past Numba's dispatcher
(``_entry_points``), picked once per dtype (:class:`_Steps`).

The float64 work arrays (:math:`\sigma` and the per-row values) are kept per thread by
shape (:func:`work_arrays`, also ``_small_distill``'s), and a ``'mean'`` or ``'sum'``
loss is formed from the compiled value directly (:func:`narrowed_scalar`): issue 13,
about a microsecond of a call.

Validation costs no pass of its own: a row that the full path's checks could refuse
(a NaN, ``+inf`` or a row of ``-inf`` in the logits; a target entry outside
:math:`[0, 1]` or a row that does not sum to 1 within ``row_sum_tolerance``) returns
None whether ``validate`` is on or off, so the full path names the error (or, unchecked,
computes what it computes). So does a call whose values the full path would make warn
or not finite.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from .. import _xp
from .._checks import row_sum_tolerance
from . import _cpu_kernels, _softmax_small
from ._batch import LossOptions
from ._entry_points import kept_table
from ._reduction import LossParts
from ._small_narrow import narrow_for, narrowing_call
from ._softmax_small import REDUCTIONS as _REDUCTIONS  # (its numbering of the reductions)
from ._terms import smoothing_coefficients

__all__ = [
    "compiled_functions",
    "hybrid_functions",
    "in_shape",
    "narrowed_scalar",
    "reduced",
    "scale_arguments",
    "target_gradient",
    "target_loss",
    "tolerance",
    "work_arrays",
]

_FLOAT64 = np.dtype(np.float64).char
_WIDE = np.dtype(np.float64)
"""The dtype the compiled steps compute in (float32 calls on float64 copies)."""
_NARROW = np.dtype(np.float32)
"""The dtype of the results of float32 calls (a dtype, not the type: NumPy takes it faster)."""
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_NO_ROWS = np.empty(0)
"""The per-row output of a reduced loss (the compiled call writes none)."""
_NOT_FORMED = np.empty(0)
"""``target_gradient64``'s ``top_expm1`` not formed (it asks where a row needs it)."""


def target_loss(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``softmax_cross_entropy_with_targets(*args, **kwargs)`` by the lean path, or None.

    Flat on purpose (issue 13: each Python call or tuple on the way is a tenth of a
    microsecond): :func:`_start`, and :func:`reduced` of the compiled loss (its
    ``'mean'`` and ``'sum'`` here).
    """
    found = _start(args, kwargs)
    if found is None:
        return None
    _, options, shape, _, rows, ell, steps, _ = found
    reduce = steps.module.target_loss64
    reduce = steps.loss if reduce is steps.loss_of else reduce  # (a patched one runs)
    reduction, log_base = _REDUCTIONS[options.reduction], options.log_base or 0.0
    if reduction == 1 or reduction == 2:  # 'sum', 'mean': :func:`reduced`'s first case,
        ok, value = reduce(rows, ell, options.z_loss, (reduction, log_base, _NO_ROWS))
        return narrowed_scalar(args[0], value) if ok else None  # (issue 13: no call of it)
    scale = (reduction, log_base)
    return reduced(reduce, (rows, ell, options.z_loss), shape, scale, args[0])


def target_gradient(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``softmax_cross_entropy_with_targets_grad(*args, **kwargs)`` by the lean path, or
    None."""
    found = _start(args, kwargs)
    if found is None:
        return None
    t, options, shape, shifted, rows, ell, steps, confident = found
    steps.subtract(shifted, ell)
    p = np.exp(shifted)  # probs: exp(sigma - ell), into a fresh array as there
    eps = options.label_smoothing
    keep, spread = smoothing_coefficients(eps, t.shape[-1]) if eps else (1.0, 0.0)
    compiled = steps.module
    gradient = compiled.target_gradient64
    gradient = steps.gradient if gradient is steps.gradient_of else gradient
    # NumPy's expm1 of log p_c = -ell (the row's maximum) only where a row may have
    # p_c > 1/2 (issue 13); a row the flag missed (a patched target_rows64 flags none),
    # the compiled call asks for, having written nothing: called again with it. (Not
    # one tuple of arguments and f(*args): that costs about what the expm1 saves.)
    status = gradient(
        p,
        t,
        rows,
        ell,
        keep,
        spread,
        bool(eps),
        options.z_loss,
        options.temperature,
        _REDUCTIONS[options.reduction],
        options.log_base or 0.0,
        shifted,  # log p
        np.expm1(-ell) if confident else _NOT_FORMED,
    )
    if status == compiled.NEEDS_TOP_EXPM1:
        status = gradient(
            p,
            t,
            rows,
            ell,
            keep,
            spread,
            bool(eps),
            options.z_loss,
            options.temperature,
            _REDUCTIONS[options.reduction],
            options.log_base or 0.0,
            shifted,
            np.expm1(-ell),
        )
    if not status:
        return None
    if args[0].dtype.char != _FLOAT64:  # float32: ``narrow_for``'s compiled cast, called
        narrowed = np.empty(p.shape, _NARROW)  # directly (issue 13: 0.3 us of a call)
        steps.narrow(p, narrowed)
        p = narrowed
    return p if len(shape) == 2 else p.reshape(shape)


def scale_arguments(options: LossOptions) -> tuple[int, float]:
    """``(reduction, log_base)`` of the compiled gradients' ``reduction_scale``."""
    return _REDUCTIONS[options.reduction], options.log_base or 0.0


def in_shape(gradient: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An N x C ``gradient`` in the caller's ``shape``."""
    return gradient if len(shape) == 2 else gradient.reshape(shape)


_Started = tuple[
    np.ndarray, LossOptions, tuple[int, ...], np.ndarray, np.ndarray, np.ndarray, "_Steps", bool
]
"""What :func:`_start` gives a call: ``(t, options, shape, shifted, rows, ell, steps,
confident)``."""


def _start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Started | None:
    r"""A call the lean path takes, up to :math:`\ell`; or None.

    ``t``: the targets, N x C float64 (float32 calls come as float64 copies);
    ``options``; ``shape``: the logits' own; then :math:`\sigma`, the 6 x N rows
    (:math:`A` and :math:`B` among them), :math:`\ell`, the compiled functions of the
    dtype and whether a row may have :math:`p_c > 1/2` (``target_rows64``'s flag).
    None also when a row is suspect (a target row's sum checked within the tolerance of
    the caller's dtype). One function (issue 13: each call on the way costs a tenth of
    a microsecond of a small call).
    """
    call = (_LEAN or _lean_call())(args, kwargs)  # arrays, options, the class axis last
    if call is None:
        return None
    z, t, options, _ = call
    given = z.dtype
    if t.dtype != given:  # (lean_call took float64 or float32 logits of native byte order)
        return None
    shape = z.shape
    if t.shape != shape or z.size > _cpu_kernels.SERIAL_ELEMENTS:
        return None
    if not (z.flags.carray and t.flags.carray and _cpu_kernels.available()):
        return None
    if given.char != _FLOAT64:  # float32: computed in float64, rounded at the end
        z, t = z.astype(_WIDE), t.astype(_WIDE)  # (the dtype: faster)
    classes = shape[-1]
    if len(shape) != 2:
        z, t = z.reshape(-1, classes), t.reshape(-1, classes)
    dtype = z.dtype  # (float64)
    steps = _STEPS.get(dtype) or _steps_of(dtype)
    compiled = steps.module
    n = z.shape[0]
    try:  # :func:`work_arrays` (the kept ones without a call of it, as :func:`tolerance`)
        kept = _SCRATCH.arrays[n, classes, 6] if dtype is _WIDE else None
        shifted, rows, rest = kept or work_arrays(n, classes, 6, dtype)
    except (AttributeError, KeyError):
        shifted, rows, rest = work_arrays(n, classes, 6, dtype)
    limit = _TOLERANCES.get((classes, given)) or tolerance(classes, given)
    shift = compiled.shift_targets64
    shift = steps.shift if shift is steps.shift_of else shift
    if not shift(z, t, limit, options.temperature, shifted, rows):
        return None
    eps = options.label_smoothing
    keep, spread = smoothing_coefficients(eps, classes) if eps else (1.0, 0.0)
    target_rows = compiled.target_rows64
    target_rows = steps.rows if target_rows is steps.rows_of else target_rows
    confident = target_rows(np.exp(shifted), shifted, t, rows, keep, spread, bool(eps))
    return t, options, shape, shifted, rows, np.log1p(rest), steps, confident


def work_arrays(
    n: int, classes: int, count: int, dtype: np.dtype = _WIDE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Work arrays of a small call, :math:`\sigma` (``n`` x ``classes``), the per-row
    values (``count`` x ``n``) and their row ``_small_numba.REST`` (a view: the argument
    of np.log1p, issue 13: no indexing a call); float64 ones (``dtype`` the float64 dtype itself, as
    the copies and NumPy's float64 arrays have it) are this thread's
    (:data:`_SCRATCH`), kept for its next call of the same shapes, at most
    ``_softmax_small._KEPT_SHAPES`` of them (issue 13: two np.empty a call); others are new.

    A call uses them from its first compiled step to its last and hands back neither
    (a reduction, or fresh per-row values; np.log1p's new :math:`\ell`, np.exp's new
    :math:`p` of the gradients); the steps between are NumPy ufuncs and compiled
    functions, which call no Python, so no second call of the thread starts while they
    are in use. Other threads have their own (a ``threading.local``: the compiled
    functions hold the GIL, the NumPy ufuncs may release it)."""
    if dtype is _WIDE:
        try:  # (issue 13: the kept arrays looked up first, no np.empty)
            return _SCRATCH.arrays[n, classes, count]
        except (AttributeError, KeyError):  # (this thread's first call; a new shape)
            return _softmax_small.kept_work_arrays(_SCRATCH, n, classes, count)
    rows = np.empty((count, n), dtype)
    return np.empty((n, classes), dtype), rows, rows[_REST]


def narrowed_scalar(logits: np.ndarray, value: float) -> Any:
    """A reduced loss ``value`` (a float64 as a Python float) as ``narrow_for(logits,
    np.float64(value))`` gives it, without the call: ``np.float32`` of the value rounds
    it once, as NumPy's cast of the float64 does (issue 13)."""
    if logits.dtype.char == _FLOAT64:
        return np.float64(value)
    if -_FLOAT32_MAX <= value <= _FLOAT32_MAX:
        return np.float32(value)
    return narrow_for(logits, np.float64(value))


_SCRATCH = threading.local()
"""Per thread, ``arrays``: :func:`work_arrays` by ``(n, classes, count)``
(``_softmax_small.kept_work_arrays``, which keeps at most ``_KEPT_SHAPES`` shapes)."""


class _Steps(NamedTuple):
    r"""The compiled functions of a call for one dtype, called past Numba's dispatcher
    (``_entry_points``): they take exactly C-contiguous arrays of the dtype (2-D, and
    1-D for :math:`\ell` and the per-row output in the loss's last argument), Python
    floats, ints and a bool, as the calls here make them.

    Those of ``_small_targets_numba`` are looked up on it at each call, and their entry
    point stands in only for the dispatcher it was picked from (``*_of``): a function
    patched there (the tests' spies and mutants) runs as it is.
    """

    shift: Callable[..., bool]  # _small_targets_numba.shift_targets64
    rows: Callable[..., bool]  # _small_targets_numba.target_rows64
    loss: Callable[..., tuple[bool, float]]  # _small_targets_numba.target_loss64
    gradient: Callable[..., int]  # _small_targets_numba.target_gradient64
    subtract: Callable[..., None]  # _small_numba.subtract_rows64
    narrow: Callable[..., None]  # _small_narrow_numba.narrow_matrix, as _small_narrow's
    shift_of: Callable[..., bool]  # the dispatchers of the first four
    rows_of: Callable[..., bool]
    loss_of: Callable[..., tuple[bool, float]]
    gradient_of: Callable[..., int]
    module: ModuleType  # _small_targets_numba itself (no call of compiled_functions)


def _steps_of(dtype: np.dtype) -> _Steps:
    """The :class:`_Steps` of ``dtype`` (float64: float32 calls compute on float64 copies),
    picked for a row of two
    classes and kept (not where a function is no dispatcher: patched, or no JIT)."""
    compiled = compiled_functions()
    z, vector, rows = np.zeros((1, 2), dtype), np.zeros(1, dtype), np.zeros((6, 1), dtype)
    own = (
        compiled.shift_targets64,
        compiled.target_rows64,
        compiled.target_loss64,
        compiled.target_gradient64,
    )
    calls = [
        (own[0], (z, z, 0.5, 1.0, z, rows)),
        (own[1], (z, z, z, rows, 1.0, 0.0, False)),
        (own[2], (rows, vector, 0.0, (2, 0.0, vector))),
        (own[3], (z, z, rows, vector, 1.0, 0.0, False, 0.0, 1.0, 2, 0.0, z, vector)),
        (hybrid_functions().subtract_rows64, (z, vector)),
        narrowing_call(),  # (any layout: the one overload that narrow_for picks too)
    ]
    return kept_table(lambda found: _Steps._make([*found, compiled]), calls, own, _STEPS, dtype)


_STEPS: dict[np.dtype, _Steps] = {}
"""The :class:`_Steps` by dtype (:func:`_steps_of`)."""


def hybrid_functions() -> ModuleType:
    """``_small_numba``, the label hybrid's compiled functions (imports Numba)."""
    return _softmax_small.compiled_calls()


def reduced(
    loss: Any,
    arguments: tuple[Any, ...],
    shape: tuple[int, ...],
    scale: tuple[int, float],
    logits: np.ndarray,
) -> Any:
    r"""The loss from ``loss(*arguments, reduce_with)``, a compiled call ending in
    ``_small_numba.reduce_rows(values, reduce_with)`` on values of its first argument's
    dtype (float64: float32 calls on float64 copies), as the caller's ``logits`` (their
    ``shape``: the batch shape and the classes) get it; None where it hands on.
    ``scale``: the reduction and :math:`\ln b` of :func:`scale_arguments`.

    The result as ``reduce_loss`` gives it, rounded as :func:`narrow_for` rounds it: per
    row in the batch shape (a NumPy scalar for 0-d), a NumPy scalar (by
    :func:`narrowed_scalar`: ``'mean'`` and ``'sum'``, the commonest, first), or
    :class:`LossParts`.
    """
    reduction, log_base = scale
    if reduction == 1 or reduction == 2:  # 'sum', 'mean' (the default): a scalar, first
        ok, value = loss(*arguments, (reduction, log_base, _NO_ROWS))
        return narrowed_scalar(logits, value) if ok else None
    batch_shape = shape[:-1]
    n = batch_shape[0] if len(batch_shape) == 1 else int(np.prod(batch_shape))
    dtype = arguments[0].dtype
    per_row = np.empty(n if reduction == 0 else 0, dtype)
    ok, value = loss(*arguments, (reduction, log_base, per_row))
    if not ok:
        return None
    if reduction == 0:
        rows = per_row if len(batch_shape) == 1 else per_row.reshape(batch_shape)[()]
        return narrow_for(logits, rows)
    return narrow_for(logits, LossParts(total=dtype.type(value), normalizer=dtype.type(n)))


def tolerance(classes: int, dtype: np.dtype) -> float:
    """``row_sum_tolerance`` of rows of ``classes`` entries of ``dtype``, kept by both."""
    key = (classes, dtype)
    try:
        return _TOLERANCES[key]
    except KeyError:
        found = row_sum_tolerance(dtype.type, classes, xp=_xp.compat_numpy)
    if len(_TOLERANCES) < 256:
        _TOLERANCES[key] = found
    return found


_TOLERANCES: dict[tuple[int, np.dtype], float] = {}
_REST = 2
"""``_small_numba.REST``: the row of the argument of log1p (imported with Numba)."""


@functools.cache
def _lean_call() -> Callable[..., Any]:
    """``_softmax.lean_call`` (``_softmax`` imports this module: imported on first use),
    kept as :data:`_LEAN` too."""
    global _LEAN
    from ._softmax import lean_call

    _LEAN = lean_call
    return lean_call


_LEAN: Callable[..., Any] | None = None
"""``_softmax.lean_call`` once :func:`_lean_call` imported it (issue 13: no call of it)."""


@functools.cache
def compiled_functions() -> ModuleType:
    """``_small_targets_numba``, imported on first use (it imports Numba)."""
    from . import _small_targets_numba

    return _small_targets_numba
