r"""The lean path of the distillation loss on small inputs (issue 13).

``distillation_loss`` and its gradient try :func:`distillation_loss` and
:func:`distillation_gradient` first (``prepared_by``'s ``shortcut``). They take NumPy
student logits and teacher, both float64 or both float32, of one shape, C-contiguous,
aligned, writable, in native byte order, with at most
:data:`_cpu_kernels.SERIAL_ELEMENTS` entries (Numba installed), with ``axis`` naming
the last axis, the teacher as ``'logits'`` or ``'probs'``, either ``direction``, any
``temperature``, ``reduction`` and ``base``.
Anything else returns None, and the full path (``_distill.prepare_distillation``) runs.

The values are the full path's bit for bit, by the float64 hybrid of
``_softmax_small``: compiled calls (``_small_targets_numba``, which calls the label
hybrid's ``_small_numba``) do the generic path's arithmetic in its order, in float64
(float32 inputs on float64 copies, below), and NumPy's
np.exp, np.log1p and np.log run between them on the values the generic path gives them.
Each ``log_softmax`` round (``tempered_log_softmax``: shift, divide, np.exp, ties and
row sum, np.log1p, subtract) runs on the student's and the teacher's rows stacked in one
buffer, so one np.exp and one np.log1p serve both:

* teacher logits :math:`v`: a round of :math:`z` and :math:`v` at :math:`T` (not of
  :math:`\log\operatorname{softmax}(v)`, which loses the differences a small :math:`T`
  brings back);
* teacher probabilities :math:`t`: :math:`\log t` by np.log (``safe_log``), then a round
  of :math:`z` at :math:`T`, stacked with :math:`\log t` at :math:`T` when
  :math:`T \ne 1`.

Then the loss is ``kl_loss64`` of NumPy's exp of the first distribution (``row_kl``,
the :math:`T^2` factor, the reduction); the gradient is NumPy's exp of both and
``tempered_difference64`` (forward) or ``reverse_gradient64``.

float32 student and teacher are computed so on float64 copies (teacher probabilities
still checked within float32's tolerance), the result rounded to float32: the values of
the full path, which computes such logits in float64 (``_widen.upcast``).

The compiled functions are called by their entry points, past Numba's dispatcher
(``_entry_points``: a quarter of a microsecond each), picked once per dtype
(:class:`_Steps`).

``_distill`` imports this module for its shortcut; the options are checked by
``_distill_options``, below both, so this module does not import ``_distill``.

Validation costs no pass of its own: logits with a NaN, ``+inf`` or a row of ``-inf``,
and teacher probabilities off the simplex, return None whether ``validate`` is on or
off, so the full path names the error (or, unchecked, computes what it computes); so
does a call whose values the full path would make warn or not finite.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from . import _cpu_kernels
from ._batch import LossOptions
from ._distill_options import KEYWORDS as _KEYWORDS
from ._distill_options import distillation_options
from ._entry_points import kept_table
from ._far_gaps import square_is_normal
from ._near_rows import KL_FLOOR as _KL_FLOOR
from ._small_narrow import narrow_for
from ._small_targets import (
    compiled_functions,
    hybrid_functions,
    reduced,
    scale_arguments,
    tolerance,
    work_arrays,
)

__all__ = ["distillation_gradient", "distillation_loss"]

_FLOAT64 = np.dtype(np.float64).char
_FLOATS = (_FLOAT64, np.dtype(np.float32).char)
_WIDE = np.dtype(np.float64)


class _Settings(NamedTuple):
    """The checked options of a lean call."""

    temperature: float
    teacher_form: str  # 'logits' or 'probs'
    forward: bool
    factor: float  # of the KL: T squared, or 1.0 at T = 1 (no product there)
    scale: tuple[int, float]  # the reduction (as _small_numba numbers it) and ln b or 0.0


def distillation_loss(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``distillation_loss(*args, **kwargs)`` by the lean path, or None.

    Flat on purpose (issue 13: each Python call or tuple on the way is a tenth of a
    microsecond): :func:`_softened`, np.exp, the compiled KL and
    ``_small_targets.reduced``.
    """
    found = _softened(args, kwargs)
    if found is None:
        return None
    stacked, log_s, log_t, settings, shape, steps = found
    if stacked is not None:
        n = stacked.shape[0] // 2
        log_s, log_t = stacked[:n], stacked[n:]
    log_p, log_q = (log_t, log_s) if settings.forward else (log_s, log_t)
    kl = compiled_functions().kl_loss64
    kl = steps.kl if kl is steps.kl_of else kl  # (a patched one, a test's spy, runs as is)
    arguments = (log_p, log_q, np.exp(log_p), settings.factor)
    loss = reduced(kl, arguments, shape, settings.scale, args[0])
    if loss is None:  # a row to form by ``_near_rows`` (or the full path's call)
        return _near_loss(args, settings, arguments[:3], shape)
    return loss


def distillation_gradient(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``distillation_loss_grad(*args, **kwargs)`` by the lean path, or None."""
    found = _softened(args, kwargs)
    if found is None:
        return None
    stacked, log_s, log_t, settings, shape, steps = found
    if stacked is not None:  # one exp for both
        n = stacked.shape[0] // 2
        both = np.exp(stacked)
        s, t = both[:n], both[n:]
    else:
        s, t = np.exp(log_s), np.exp(log_t)
    reduction, log_base = settings.scale
    compiled = compiled_functions()
    # A row for ``_near_rows`` is handed on before anything is written; a value that is
    # not finite, after: it stays in ``s``, and ``_near_gradient`` gives None.
    grad: np.ndarray | None = s
    if settings.forward:
        # The rows to form again (before s is written), a float64 caller's only: a float32
        # caller's result rounds those units away (and the check took 2 us of a call).
        given = settings.temperature == 1.0 and settings.teacher_form != "logits"
        wide = args[0].dtype.char == _FLOAT64 and not given  # (given: _cancelling_rows)
        cancelling = _near_functions().cancelling_rows64(s, t) if wide else None
        difference = compiled.tempered_difference64
        difference = steps.difference if difference is steps.difference_of else difference
        if not difference(s, t, settings.temperature, reduction, log_base):
            if stacked is not None:
                log_s, log_t = stacked[:n], stacked[n:]
            grad = _near_gradient(args, settings, (s, t, log_t, log_s))
        if grad is not None and cancelling is not None and cancelling.any():
            grad = _cancelling_gradient(args, settings, grad, cancelling)
    else:
        if stacked is not None:
            log_s, log_t = stacked[:n], stacked[n:]
        reverse = compiled.reverse_gradient64
        reverse = steps.reverse if reverse is steps.reverse_of else reverse
        if not reverse(s, log_s, log_t, settings.temperature, reduction, log_base):
            grad = _near_gradient(args, settings, (s, log_s, log_t))
    if grad is None:
        return None
    grad = narrow_for(args[0], grad)
    return grad if len(shape) == 2 else grad.reshape(shape)


def _near_loss(
    args: tuple[Any, ...],
    settings: _Settings,
    arguments: tuple[np.ndarray, np.ndarray, np.ndarray],
    shape: tuple[int, ...],
) -> Any:
    r"""The loss where rows have a KL below ``_near_rows.KL_FLOOR`` (``kl_loss64`` handed
    them on), as the full path forms it: :math:`T^2 D` per row, those rows by
    ``NearRows``' compiled formula, then ``reduce_rows``, in one compiled call
    (``_near_rows_numba.near_kl_loss64``); None where a value is not finite or there is
    no such row (the call was handed on for another reason). At :math:`T = 1` a teacher
    of probabilities is taken as it is: the formula's renormalised teacher corrected by
    its mass (``_near_rows.given_mass``), as the full path's ``_distill._as_given``."""
    z, v = _scores(args, settings)
    compiled = _near_functions()
    scores = (v, z) if settings.forward else (z, v)
    given = (_NO_MASS, _NO_MASS)
    if settings.temperature == 1.0 and settings.teacher_form != "logits":
        log_p, log_q, _ = arguments
        from ._near_rows import given_mass

        mass, ell = given_mass(log_p if settings.forward else log_q, np)
        given = (mass, ell) if settings.forward else (np.ones_like(ell), -ell)
    tempered = compiled.tempered(settings.temperature)
    near = (*arguments, settings.factor, scores, tempered, given)
    return reduced(compiled.near_kl_loss64, near, shape, settings.scale, args[0])


_NO_MASS = np.empty(0)
"""``near_kl_loss64``'s ``given`` where the teacher is not taken as it is."""


def _near_gradient(
    args: tuple[Any, ...], settings: _Settings, arrays: tuple[np.ndarray, ...]
) -> np.ndarray | None:
    r"""The gradient where the compiled one handed rows on to ``_near_rows`` (a small
    :math:`\max_c|s_c - t_c|` or KL, forward, ``arrays`` :math:`(s, t, \log t, \log
    s)`; or a small :math:`\max_c|s_c(\log s_c - \log t_c - D)|` or KL, reverse,
    :math:`(s, \log s, \log t)`: ``_near_rows.forward_rows_flagged``), as the full
    path forms it: the other rows by the compiled function's operations, those rows
    by ``_near_rows``, then the reduction's scale, in one compiled call into :math:`s`.
    Forward: ``near_forward_gradient64``, every row formed even where none is flagged
    (``tempered_difference64`` hands on more rows than that); None where a value is not
    finite. Reverse:
    ``near_reverse_gradient64``; None where there is no such row, or a value is not
    finite."""
    s, t = arrays[0], settings.temperature
    reduction, log_base = settings.scale
    z, v = _scores(args, settings)
    compiled = _near_functions()
    if settings.forward:  # (rows of a KL below the floor too: forward_rows_flagged)
        small = compiled_functions().kl_rows64(arrays[2], arrays[3], arrays[1], 1.0) < _KL_FLOOR
        near = (s, arrays[1], (v, z), compiled.tempered(t), reduction, log_base, small)
        return s if compiled.near_forward_gradient64(*near) else None
    reverse = (s, arrays[1], arrays[2], (z, v), t, reduction, log_base)
    return s if compiled.near_reverse_gradient64(*reverse) else None


def _cancelling_gradient(
    args: tuple[Any, ...], settings: _Settings, grad: np.ndarray, rows: np.ndarray
) -> np.ndarray | None:
    r"""The forward gradient ``grad`` with its ``rows`` of :math:`\max_c |s_c - t_c|`
    below ``_near_rows.CANCEL_SPREAD`` :math:`\max_c t_c` formed again without the
    difference (``reform_rows64``), as the full path forms them (``NearRows``, issue 13,
    branch distfwd1); None where a value is not finite."""
    reduction, log_base = settings.scale
    z, v = _scores(args, settings)
    compiled = _near_functions()
    tempered = compiled.tempered(settings.temperature)
    return (
        grad if compiled.reform_rows64(grad, rows, (v, z), tempered, reduction, log_base) else None
    )


def _scores(args: tuple[Any, ...], settings: _Settings) -> tuple[np.ndarray, np.ndarray]:
    r"""The student's logits and the teacher's scores (logits, or :math:`\log t` by
    ``safe_log``) of a lean call in float64, N x C, as the full path gives them to
    ``_near_rows``."""
    classes = args[0].shape[-1]
    z = np.asarray(args[0], dtype=np.float64).reshape(-1, classes)
    v = np.asarray(args[1], dtype=np.float64).reshape(-1, classes)
    if settings.teacher_form == "probs":
        with np.errstate(divide="ignore"):
            v = np.log(v)  # safe_log
    return z, v


@functools.cache
def _near_functions() -> ModuleType:
    """``_near_rows_numba``, imported on first use (it imports Numba); kept (an import
    statement at each call cost a microsecond)."""
    from . import _near_rows_numba

    return _near_rows_numba


_Softened = tuple[np.ndarray | None, Any, Any, "_Settings", tuple[int, ...], "_Steps"]
"""What :func:`_softened` gives: ``log_s`` and ``log_t`` (Any) are arrays, or None where
``stacked`` holds them."""


def _softened(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Softened | None:
    r"""``(stacked, log_s, log_t, settings, shape, steps)`` of a call the lean path
    takes, or None: the softened student and teacher of ``prepare_distillation`` (N x
    C), or the 2N x C buffer of both where one round gave both (then ``log_s`` and
    ``log_t`` are None: its halves, sliced where needed), the checked options, the
    student's own shape and the compiled functions of its dtype.

    The checks first (NumPy arrays of one float dtype and shape, and so on: the module
    docstring), then the softening; the benchmark's case (teacher logits at
    :math:`T = 1`) inline, as one round of both sides stacked, the others by
    :func:`_log_probs`.
    """
    if len(args) != 2:
        return None
    z, v = args
    if type(z) is not np.ndarray or type(v) is not np.ndarray:
        return None
    dtype = z.dtype
    if dtype.char not in _FLOATS or v.dtype != dtype or not dtype.isnative:
        return None  # (a float of another byte order has the same char, but is not equal)
    shape = z.shape
    if v.shape != shape or not 0 < z.size <= _cpu_kernels.SERIAL_ELEMENTS:
        return None
    if not shape:  # a scalar: the full path names it
        return None
    if not (z.flags.carray and v.flags.carray):
        return None
    if "validate" in kwargs and type(kwargs["validate"]) is not bool:
        return None  # (the full path checks it)
    if not kwargs or (len(kwargs) == 1 and "validate" in kwargs):  # the defaults
        settings: _Settings | None = _DEFAULT_SETTINGS
    else:
        settings = _settings(kwargs, len(shape))
    if settings is None:
        return None
    if len(shape) != 2:
        z, v = z.reshape(-1, shape[-1]), v.reshape(-1, shape[-1])
    given = dtype  # (the teacher's probabilities are checked within its tolerance)
    if dtype.char != _FLOAT64:  # float32: computed in float64, rounded at the end
        z, v, dtype = z.astype(_WIDE), v.astype(_WIDE), _WIDE  # (the dtype: faster)
    steps = _STEPS.get(dtype)
    if steps is None:  # (kept only where Numba is installed)
        if not _cpu_kernels.available():
            return None
        steps = _steps_of(dtype)
    if settings.temperature != 1.0 or settings.teacher_form != "logits":
        found = _log_probs(z, v, settings, steps, given)
        if found is None:
            return None
        if found[2] is not None:
            return found[2], None, None, settings, shape, steps
        return None, found[0], found[1], settings, shape, steps
    stacked = _stacked_round(z, 1.0, v, 1.0, steps)  # teacher logits at T = 1
    if stacked is None:
        return None
    return stacked, None, None, settings, shape, steps


def _settings(kwargs: dict[str, Any], ndim: int) -> _Settings | None:
    """The settings of a call's keywords (kept by their names, values and types, as
    ``_softmax.lean_settings`` keeps the label path's), or None for any the lean path
    does not take: another keyword, an ``axis`` that is not the last, an option the
    full path refuses (it then names it)."""
    axis = kwargs.get("axis", -1)
    if type(axis) is not int or (axis != -1 and axis != ndim - 1):
        return None
    try:
        return _cached_settings(**{k: v for k, v in kwargs.items() if k != "axis"})
    except TypeError:  # unhashable, or an unknown keyword
        return None


@functools.lru_cache(maxsize=256, typed=True)
def _cached_settings(**kwargs: Any) -> _Settings | None:
    """The checked settings of keywords other than ``axis`` (``validate`` changes nothing
    the lean path does); None for an unknown keyword or a refused value."""
    if not _KEYWORDS.keys() >= kwargs.keys():
        return None
    given = _KEYWORDS | kwargs
    try:
        t, form, direction, options = distillation_options(
            given["temperature"],
            given["teacher_form"],
            given["direction"],
            given["reduction"],
            given["base"],
        )
    except ValueError:  # the full path raises it
        return None
    if form not in ("logits", "probs"):
        return None
    factor = 1.0 if t == 1.0 else t * t
    if not square_is_normal(t):
        # T^2 past the normal range: the full path forms T^2 D by powers of two, and (at
        # T >= 2^1000, far beyond) the gaps that such a T brings back in range
        return None
    return _Settings(t, form, direction == "forward", factor, scale_arguments(options))


_DEFAULT_SETTINGS = _Settings(1.0, "logits", True, 1.0, scale_arguments(LossOptions()))


def _log_probs(
    z: np.ndarray, v: np.ndarray, settings: _Settings, steps: _Steps, given: np.dtype
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    r"""``(log_s, log_t, stacked)`` (N x C) of ``prepare_distillation`` for the N x C
    student ``z`` and teacher ``v``: the softened student and teacher, and the 2N x C
    buffer of both when one round gave both (else None); None when a row is suspect
    (teacher probabilities checked within the tolerance of ``given``, the caller's
    dtype)."""
    t = settings.temperature
    n = z.shape[0]
    if settings.teacher_form == "logits":  # (the logits at T: the full path's softening)
        both = _stacked_round(z, t, v, t, steps)
        return None if both is None else (both[:n], both[n:], both)
    if not steps.screen(v, tolerance(z.shape[1], given)):
        return None
    with np.errstate(divide="ignore"):
        log_t = np.log(v)  # safe_log
    if t == 1.0:
        student_round = _round(z, 1.0, steps)
        return None if student_round is None else (student_round, log_t, None)
    both = _stacked_round(z, t, log_t, t, steps)
    if both is None:
        return None
    return both[:n], both[n:], both


def _round(z: np.ndarray, temperature: float, steps: _Steps) -> np.ndarray | None:
    r"""``tempered_log_softmax`` of ``z`` (N x C): :math:`\sigma - \ell`, or None."""
    shifted, rows, rest = work_arrays(z.shape[0], z.shape[1], 4, z.dtype)
    if not steps.shift_logits(z, temperature, shifted, rows):
        return None
    steps.rest(np.exp(shifted), shifted, rows, False)
    steps.subtract(shifted, np.log1p(rest))
    return shifted


def _stacked_round(
    z: np.ndarray, z_temperature: float, v: np.ndarray, v_temperature: float, steps: _Steps
) -> np.ndarray | None:
    """:func:`_round` of ``z`` and of ``v``, each at its temperature, stacked (2N x C)."""
    n, classes = z.shape
    shifted, rows, rest = work_arrays(2 * n, classes, 4, z.dtype)
    if not steps.shift_pair(z, z_temperature, v, v_temperature, shifted, rows):
        return None
    steps.rest(np.exp(shifted), shifted, rows, False)
    steps.subtract(shifted, np.log1p(rest))
    return shifted


class _Steps(NamedTuple):
    """The compiled functions of a call for one dtype, called past Numba's dispatcher
    (``_entry_points``): they take exactly C-contiguous arrays of the dtype (2-D, and
    1-D for ``subtract`` and the per-row output in ``kl``'s last argument), Python
    floats, ints and a bool, as the calls here make them.

    The last calls (the loss and the gradients) are looked up on their module at each
    call, and their entry point stands in only for the dispatcher it was picked from
    (``*_of``): a function patched there (the tests' spies and mutants) runs as it is.
    """

    shift_pair: Callable[..., bool]  # _small_targets_numba.shift_pair64
    shift_logits: Callable[..., bool]  # _small_targets_numba.shift_logits64
    rest: Callable[..., None]  # _small_numba.rest_of_rows64
    subtract: Callable[..., None]  # _small_numba.subtract_rows64
    screen: Callable[..., bool]  # _small_targets_numba.screen_distributions64
    kl: Callable[..., tuple[bool, float]]  # _small_targets_numba.kl_loss64
    difference: Callable[..., bool]  # _small_targets_numba.tempered_difference64
    reverse: Callable[..., bool]  # _small_targets_numba.reverse_gradient64
    kl_of: Callable[..., tuple[bool, float]]  # the dispatchers of the last three
    difference_of: Callable[..., bool]
    reverse_of: Callable[..., bool]


def _steps_of(dtype: np.dtype) -> _Steps:
    """The :class:`_Steps` of ``dtype`` (float64: float32 calls compute on float64 copies),
    picked for a row of two
    classes and kept (not where a function is no dispatcher: patched, or no JIT)."""
    compiled, hybrid = compiled_functions(), hybrid_functions()
    z, vector, rows = np.zeros((1, 2), dtype), np.zeros(2, dtype), np.zeros((4, 2), dtype)
    last = (compiled.kl_loss64, compiled.tempered_difference64, compiled.reverse_gradient64)
    calls = [
        (compiled.shift_pair64, (z, 1.0, z, 1.0, z, rows)),
        (compiled.shift_logits64, (z, 1.0, z, rows)),
        (hybrid.rest_of_rows64, (z, z, rows, False)),
        (hybrid.subtract_rows64, (z, vector)),
        (compiled.screen_distributions64, (z, 0.5)),
        (last[0], (z, z, z, 1.0, (2, 0.0, vector))),
        (last[1], (z, z, 1.0, 2, 0.0)),
        (last[2], (z, z, z, 1.0, 2, 0.0)),
    ]
    return kept_table(_Steps._make, calls, last, _STEPS, dtype)


_STEPS: dict[np.dtype, _Steps] = {}
"""The :class:`_Steps` by dtype (:func:`_steps_of`)."""
