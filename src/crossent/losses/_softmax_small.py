"""The compiled call of the lean softmax cross-entropy path (issue 13, small inputs).

A call of ``softmax_cross_entropy`` or its gradient that the lean path takes (see
``_softmax.py``), with float32 logits, int64 labels, both C-contiguous, aligned,
writable and in native byte order, and at most :data:`_cpu_kernels.SERIAL_ELEMENTS`
logits, is one Numba call (``_small_numba``): screening, row statistics, per-row loss
and reduction, or the gradient, label smoothing included. Around it, only what the
call's result needs: an output array, the result's NumPy type. Values are the full
path's bit for bit (``_small_numba``'s docstring says how); a suspect row (NaN,
``+inf``, a row of ``-inf``, a label that is not a class) gives None, and the caller
takes the full path, which names what is wrong.

Float64 logits (same conditions) take a hybrid, since a compiled ``exp`` (libm's) may
differ by an ulp from NumPy's (its own SIMD exp on AVX-512, SVML's log1p): compiled
calls screen the rows and do the generic path's arithmetic in its order (maximum,
shift, temperature, the row sums in NumPy's pairwise order, the label's term, z-loss,
reduction, the gradient's coefficients), and between them NumPy's np.exp and np.log1p
run on the very values the generic path gives them (``softmax_rows``,
``log_sum_exp_shifted``, ``probs``): the loss is ``shift_rows64``, np.exp,
``rest_of_rows64``, np.log1p, ``label_loss64``; the gradient adds ``subtract_rows64``
and np.exp for :math:`p`, then ``label_gradient64``. So the values are the generic
path's bit for bit on every CPU. A call that the full path would make warn (an
overflow) or give a value that is not finite is handed on too (None).

The layout conditions keep the compiled signatures few (a 2-d or other logits' shape
is reshaped to N x C here), each compiled once per machine and cached by Numba.
Importing this module does not import Numba; the first call that is taken does.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable
from types import ModuleType
from typing import Any, NamedTuple, TypeVar

import numpy as np

from . import _cpu_kernels
from ._batch import LossOptions
from ._entry_points import kept_table
from ._reduction import LossParts

__all__ = [
    "REDUCTIONS",
    "compiled_calls",
    "keep_for_thread",
    "kept_work_arrays",
    "label_gradient",
    "label_loss",
    "label_rows64",
    "steps64",
    "takes",
]

_FLOAT32 = np.dtype(np.float32).char
_INT64 = np.dtype(np.int64).char
REDUCTIONS = {"none": 0, "sum": 1, "mean": 2, "parts": 3}
"""The reductions as ``_small_numba`` numbers them (``NONE``, ``SUM``, ``MEAN``, ``PARTS``)."""
_NO_ROWS = np.empty(0, dtype=np.float32)
"""The per-row output of a reduced loss (the compiled call writes none)."""
_FLOAT64 = np.dtype(np.float64).char
_NO_ROWS64 = np.empty(0)
"""The per-row output of a reduced float64 loss (the compiled call writes none)."""


def takes(logits: np.ndarray, labels: np.ndarray, out: object = None) -> bool:
    """Whether the compiled call takes these NumPy arrays (the lean path checked the
    options, the class axis and that the logits are not empty).

    ``out``: None, or a buffer that ``check_out`` accepts and the compiled call can
    write (aligned, native byte order); any other is left to the lean path, which names
    what is wrong.
    """
    dtype, label_dtype = logits.dtype, labels.dtype
    char = dtype.char
    if (char != _FLOAT32 and char != _FLOAT64) or label_dtype.char != _INT64:
        return False
    if not (dtype.isnative and label_dtype.isnative):  # (Numba takes native byte order)
        return False
    if logits.size > _cpu_kernels.SERIAL_ELEMENTS or not _cpu_kernels.available():
        return False
    if labels.shape != logits.shape[:-1] or not (logits.flags.carray and labels.flags.carray):
        return False
    return out is None or (
        type(out) is np.ndarray
        and out.dtype.char == char
        and out.dtype.isnative
        and out.shape == logits.shape
        and out.flags.carray
        and not np.may_share_memory(out, logits)
    )


def label_loss(logits: np.ndarray, labels: np.ndarray, options: LossOptions) -> Any:
    """The loss of a call that :func:`takes`, or None when a row is suspect."""
    if logits.dtype.char == _FLOAT64:
        return _label_loss64(logits, labels, options)
    classes = logits.shape[-1]
    z = logits if logits.ndim == 2 else logits.reshape(-1, classes)
    n = z.shape[0]
    reduction = REDUCTIONS[options.reduction]
    rows = np.empty(n, dtype=np.float32) if reduction == 0 else _NO_ROWS
    ok, value = compiled_calls().label_loss(
        z,
        labels if labels.ndim == 1 else labels.reshape(n),
        1.0 / options.temperature,
        options.z_loss,
        reduction,
        options.log_base or 0.0,
        rows,
        options.label_smoothing,
    )
    if not ok:
        return None
    if reduction == 0:  # the batch shape; a 0-d result is a NumPy scalar, as finalize's
        return rows if labels.ndim == 1 else rows.reshape(labels.shape)[()]
    if reduction == 3:
        return LossParts(total=np.float32(value), normalizer=np.float32(n))
    return np.float32(value)


def label_gradient(
    logits: np.ndarray, labels: np.ndarray, options: LossOptions, out: np.ndarray | None
) -> Any:
    r"""The gradient of a call that :func:`takes`, into ``out`` when given, or None when a
    row is suspect or, float32 without smoothing, of :math:`|\mathrm{LSE}| \ge`
    ``_far_lse.FAR_LSE`` (the full path forms such a row again; issue 13) (then nothing
    is written), or, smoothed, where such a row came out non-finite (then ``out`` holds
    entries that the full path writes again)."""
    if logits.dtype.char == _FLOAT64:
        return _label_gradient64(logits, labels, options, out)
    grad = np.empty_like(logits) if out is None else out
    classes = logits.shape[-1]
    two_d = logits.ndim == 2
    ok = compiled_calls().label_gradient(
        logits if two_d else logits.reshape(-1, classes),
        labels if two_d else labels.reshape(-1),
        options.temperature,
        options.z_loss,
        REDUCTIONS[options.reduction],
        options.log_base or 0.0,
        grad if two_d else grad.reshape(-1, classes),
        options.label_smoothing,
    )
    return grad if ok else None


def label_rows64(
    logits: np.ndarray, labels: np.ndarray, options: LossOptions, steps: _Steps64
) -> tuple[np.ndarray, ...] | None:
    r"""The generic path's ``softmax_rows`` of float64 logits: ``(z, y, shifted, rows,
    ell)``, the logits (N x C), the labels (N), :math:`\sigma` (N x C), :math:`m` and
    :math:`\sigma_y` (rows ``TOP`` and ``LABEL`` of a 4 x N buffer) and :math:`\ell`
    (N); None when a row is suspect. ``steps``: :func:`steps64`.

    NumPy's np.exp and np.log1p run here, on the values the generic path gives them,
    into fresh arrays as there.
    """
    classes = logits.shape[-1]
    z = logits if logits.ndim == 2 else logits.reshape(-1, classes)
    n = z.shape[0]
    y = labels if labels.ndim == 1 else labels.reshape(n)
    try:  # (issue 13: this thread's work arrays of the shape, kept: no np.empty, no indexing)
        shifted, rows, rest = _KEPT.arrays[n, classes, 4]
    except (AttributeError, KeyError):
        shifted, rows, rest = kept_work_arrays(_KEPT, n, classes, 4)
    if not steps.shift(z, y, options.temperature, shifted, rows):
        return None
    # as log_sum_exp_shifted (and weighted_class_sum for smoothing)
    steps.rest(np.exp(shifted), shifted, rows, bool(options.label_smoothing))
    return z, y, shifted, rows, np.log1p(rest)


_Arrays = TypeVar("_Arrays")


def kept_work_arrays(
    scratch: threading.local, n: int, classes: int, count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""New float64 work arrays of a small call: :math:`\sigma` (``n`` x ``classes``), the
    ``count`` x ``n`` per-row values and their row ``_REST`` (a view: the argument of
    np.log1p), kept in ``scratch`` (a ``threading.local``: ``scratch.arrays`` by ``(n,
    classes, count)``, where the caller looks first) if it keeps fewer than
    :data:`_KEPT_SHAPES` shapes (:func:`label_rows64`'s, ``_small_targets.work_arrays``).

    A call uses them from its first compiled step to its last and hands back neither
    (its results are np.exp's and np.log1p's new arrays, a reduction, or fresh per-row
    values); the steps between are NumPy ufuncs and compiled functions, which call no
    Python, so no other call of the thread that shares ``scratch`` starts while they are
    in use. Other threads have their own (the compiled functions hold the GIL, the NumPy
    ufuncs may release it)."""
    rows = np.empty((count, n))
    return keep_for_thread(
        scratch, (n, classes, count), (np.empty((n, classes)), rows, rows[_REST])
    )


def keep_for_thread(scratch: threading.local, key: Hashable, arrays: _Arrays) -> _Arrays:
    """``arrays``, kept as ``scratch.arrays[key]`` (``scratch``: a ``threading.local``)
    where the thread keeps fewer than :data:`_KEPT_SHAPES` there: the one rule of the
    small calls' per-thread work arrays (:func:`kept_work_arrays`, the small sigmoid
    path's workspace ``_small_sigmoid._workspace``), each caller with its own
    ``scratch`` (no sharing between paths), looking in ``scratch.arrays`` first."""
    kept = scratch.__dict__.setdefault("arrays", {})
    if len(kept) < _KEPT_SHAPES:
        kept[key] = arrays
    return arrays


_KEPT = threading.local()
"""Per thread, ``arrays``: :func:`label_rows64`'s :func:`kept_work_arrays`."""
_KEPT_SHAPES = 16
"""The most shapes whose work arrays a thread keeps (each at most
:data:`_cpu_kernels.SERIAL_ELEMENTS` entries and its rows)."""


def _label_loss64(logits: np.ndarray, labels: np.ndarray, options: LossOptions) -> Any:
    """:func:`label_loss` of float64 logits (:func:`label_rows64`, then the compiled
    loss and reduction)."""
    steps = _STEPS.get(_FLOAT64) or steps64()
    found = label_rows64(logits, labels, options, steps)
    if found is None:
        return None
    rows, ell = found[3:]
    reduction = REDUCTIONS[options.reduction]
    per_row = np.empty(ell.shape[0]) if reduction == 0 else _NO_ROWS64
    ok, value = steps.loss(
        rows,
        ell,
        options.z_loss,
        reduction,
        options.log_base or 0.0,
        per_row,
        options.label_smoothing,
        logits.shape[-1],
    )
    if not ok:
        return None
    if reduction == 0:
        return per_row if labels.ndim == 1 else per_row.reshape(labels.shape)[()]
    if reduction == 3:
        return LossParts(total=np.float64(value), normalizer=np.float64(ell.shape[0]))
    return np.float64(value)


def _label_gradient64(
    logits: np.ndarray, labels: np.ndarray, options: LossOptions, out: np.ndarray | None
) -> Any:
    r""":func:`label_gradient` of float64 logits: :math:`p` by ``probs``' np.exp of
    :math:`\sigma - \ell` (into a fresh array, as there), the rest compiled."""
    steps = _STEPS.get(_FLOAT64) or steps64()
    found = label_rows64(logits, labels, options, steps)
    if found is None:
        return None
    z, y, shifted, rows, ell = found
    steps.subtract(shifted, ell)
    p = np.exp(shifted)
    ok = steps.gradient(
        p,
        y,
        rows,
        ell,
        np.expm1(rows[_LABEL] - ell),  # p_y - 1, by NumPy as ``_exact_label_entries``
        options.z_loss,
        options.temperature,
        REDUCTIONS[options.reduction],
        options.log_base or 0.0,
        p if out is None else out.reshape(z.shape),
        options.label_smoothing,
    )
    if not ok:
        return None
    return p.reshape(logits.shape) if out is None else out


class _Steps64(NamedTuple):
    """The compiled functions of a float64 call (``_small_numba``'s), called past Numba's
    dispatcher (``_entry_points``): they take exactly C-contiguous writable float64
    arrays (int64 labels), Python floats, ints and a bool, as the calls here make them
    (:func:`takes` took the logits, the labels and ``out``). Picked once and kept: a
    function patched on ``_small_numba`` afterwards is not seen (clear ``_STEPS``)."""

    shift: Callable[..., bool]  # shift_rows64
    rest: Callable[..., None]  # rest_of_rows64
    subtract: Callable[..., None]  # subtract_rows64
    loss: Callable[..., tuple[bool, float]]  # label_loss64
    gradient: Callable[..., bool]  # label_gradient64


def steps64() -> _Steps64:
    """The :class:`_Steps64`, picked for a row of two classes and kept (not where a
    function is no dispatcher: patched, or no JIT)."""
    compiled = compiled_calls()
    z, rows, vector = np.zeros((1, 2)), np.zeros((4, 1)), np.zeros(1)
    y = np.zeros(1, dtype=np.int64)
    calls = [
        (compiled.shift_rows64, (z, y, 1.0, z, rows)),
        (compiled.rest_of_rows64, (z, z, rows, False)),
        (compiled.subtract_rows64, (z, vector)),
        (compiled.label_loss64, (rows, vector, 0.0, 2, 0.0, vector, 0.0, 2)),
        (compiled.label_gradient64, (z, y, rows, vector, vector, 0.0, 1.0, 2, 0.0, z, 0.0)),
    ]
    return kept_table(_Steps64._make, calls, (), _STEPS, _FLOAT64)


_STEPS: dict[str, _Steps64] = {}
"""The :class:`_Steps64`, kept under the float64 dtype's character (:func:`steps64`)."""
_LABEL, _REST = 1, 2
"""``_small_numba.LABEL`` and ``REST``: the rows of sigma_y and of the argument
of log1p (imported with Numba)."""


@functools.cache
def compiled_calls() -> ModuleType:
    """``_small_numba``, imported on first use (it imports Numba)."""
    from . import _small_numba

    return _small_numba
