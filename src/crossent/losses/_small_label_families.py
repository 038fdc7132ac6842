r"""Small calls of focal, poly-1 and hinge (issue 13, "Small inputs").

A call of ``softmax_focal_loss``, ``poly1_cross_entropy``, ``multiclass_hinge_loss`` or
a gradient of theirs is first offered to the family's :class:`SmallFamily` shortcut
(``_batch.prepared_by(..., shortcut=...)``). It takes the call when:

* the arguments are two NumPy arrays, the logits float32 or float64, the labels int64,
  both as ``_softmax_small.takes`` takes them (C-contiguous, native byte order, at
  most ``SERIAL_ELEMENTS`` logits, Numba installed), the classes last and not empty
  (``_softmax.classes_last``);
* the keywords are the family's (``axis``, ``reduction``, ``base``, ``validate``, its
  own options, ``ignore_index`` an int, ``weight`` a native-byte-order float64 array
  of one finite, non-negative weight per class, with float64 logits), ``validate`` a
  bool; a bad option value is left to the full path, which names it in its order.

Focal and poly-1 compute float32 logits on a float64 copy (the few entries of a small
call) and round the results to float32 (:func:`_in_float64`): the values of the full
path, which computes such logits in float64 (``_widen.upcast``); their routes below
see float64 logits only. Hinge computes float32 in float32 (its margins, by
``_hinge._margin``, are the same either way).

Then the family's arithmetic (``_small_label_numba``, whose docstring says how the
values are the full path's bit for bit) runs without the full path's objects and
checks of what cannot happen here, by one of three routes for focal and poly-1:

* float64 logits where :func:`libm_is_numpys` (NumPy's float64 exp, log, log1p and
  expm1 are the C library's, as on x86-64 Linux without AVX-512): one compiled call,
  ``label_libm``, which makes the hybrid's NumPy calls with the C library's functions;
* otherwise (float64 on other machines, such as AVX-512 ones), where
  ``_small_loops.numpy_loops`` finds NumPy's own float64 loops of those functions
  (CPython, NumPy's ufunc structure as checked there): the same compiled call,
  ``label_libm``, making the hybrid's NumPy calls with those very loops;
* otherwise the hybrid: compiled calls with NumPy's own np.exp, np.log1p, np.expm1 and
  np.log between them (:func:`_label_rows` and the bodies below).

A suspect row (NaN, ``+inf``, a row of ``-inf``, a label that is not a class, a
difference from the maximum that overflows) or a value that is not finite gives None,
and the full path runs, which names what is wrong or warns. ``validate`` changes
nothing here: the screening is done either way, and what it refuses goes to the full
path with the caller's ``validate``.

Not taken (the full path runs): class weights with float32 logits or that are not a
float64 array, float32 hinge rows of more than 128 classes (Weston-Watkins), other
dtypes and layouts.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._batch import LossOptions, options_of
from ._reduction import LossParts
from ._small_loops import numpy_loops, numpys_on_probes
from ._small_narrow import to_float32
from ._softmax import classes_last
from ._softmax_small import REDUCTIONS as _REDUCTIONS
from ._softmax_small import compiled_calls as _softmax_compiled
from ._softmax_small import takes

__all__ = [
    "SmallFamily",
    "focal_gradient",
    "focal_loss",
    "hinge_gradient",
    "hinge_loss",
    "libm_is_numpys",
    "poly_gradient",
    "poly_loss",
    "small_family",
]

_FLOAT64 = np.dtype(np.float64).char
_NO_ROWS: dict[np.dtype[Any], np.ndarray] = {
    np.dtype(np.float64): np.empty(0),
    np.dtype(np.float32): np.empty(0, np.float32),
}
"""The per-row output of a reduced loss, by dtype (the compiled call writes none)."""

_Settings = tuple[tuple[Any, ...], LossOptions]
"""``(own options, options)`` of a call's keywords."""
_Labels = tuple[np.ndarray, np.ndarray, float]
"""``(labels, weights, normaliser)``: the labels (N) safe to index with, ``weights``
(``label_weights``' 2 x N, or empty: every row weighs 1) and their sum."""
_Call = tuple[np.ndarray, _Labels, tuple[Any, ...], LossOptions]
"""``(logits, labels, own options, options)`` of a call a shortcut takes."""


@dataclass(frozen=True, eq=False)  # (kept by identity in the settings' cache)
class SmallFamily:
    """The small-call shortcuts of one family: which keywords it takes, and how it
    checks its own options (``own``: the checked values, in order, from keywords)."""

    defaults: dict[str, Any]  # the prepare step's keywords and defaults
    own: Callable[..., tuple[Any, ...]]
    own_names: tuple[str, ...]  # the parameters of ``own``
    dtypes: str  # the characters of the logits' dtypes it takes
    plain: _Settings | None = None  # the settings of the defaults

    def settings(self, kwargs: dict[str, Any]) -> _Settings | None:
        """``(own options, options)`` of a call's keywords (less ``weight`` and
        ``ignore_index``, which :meth:`call` takes apart), or None when the shortcut does
        not take them (another keyword, a bad value, ``validate`` not a bool).
        Kept by the keywords' values and types, as ``_softmax.lean_settings`` keeps
        them; a value that cannot be a key (an array) is looked at afresh."""
        try:
            return _cached_settings(self, **kwargs)
        except TypeError:  # unhashable
            return _settings_of(self, kwargs)

    def call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Call | None:
        """The call's logits, labels (:func:`_labels`) and settings, when the shortcut
        takes them; else None."""
        if len(args) != 2:
            return None
        logits, labels = args
        if type(logits) is not np.ndarray or type(labels) is not np.ndarray:
            return None
        if logits.dtype.char not in self.dtypes or not takes(logits, labels):
            return None
        weighting = None
        if not kwargs or (len(kwargs) == 1 and type(kwargs.get("validate")) is bool):
            settings = self.plain  # the defaults (``validate`` changes nothing here)
        else:
            weighs = "weight" in self.defaults  # (hinge has no class weights)
            if "ignore_index" in kwargs or ("weight" in kwargs and weighs):
                kwargs = dict(kwargs)
                weight = kwargs.pop("weight", None) if weighs else None
                weighting = (weight, kwargs.pop("ignore_index", None))
            settings = self.settings(kwargs)
        if settings is None:
            return None
        own, options = settings
        if not classes_last(logits, kwargs.get("axis", -1), options):
            return None
        found = _labels(logits, labels, weighting)
        return None if found is None else (logits, found, own, options)

    def shortcut(
        self, compute: Callable[..., Any]
    ) -> Callable[[tuple[Any, ...], dict[str, Any]], Any]:
        """The ``shortcut`` for ``_batch.prepared_by``: ``compute(logits, labels, own,
        options)`` of a call :meth:`call` takes (it may return None too), else None."""

        def shortcut(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            call = self.call(args, kwargs)
            return None if call is None else compute(*call)

        return shortcut


def small_family(
    prepare: Callable[..., Any], own: Callable[..., tuple[Any, ...]], *, dtypes: str
) -> SmallFamily:
    """The :class:`SmallFamily` of the prepare step ``prepare`` (its keyword-only
    parameters and defaults); ``own(**options)`` checks the family's options."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(prepare).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    family = SmallFamily(defaults, own, tuple(inspect.signature(own).parameters), dtypes)
    return dataclasses.replace(family, plain=_settings_of(family, {}))


def _labels(
    logits: np.ndarray, labels: np.ndarray, weighting: tuple[object, object] | None
) -> _Labels | None:
    """The labels of a call with ``weighting``, ``(weight, ignore_index)`` or None (neither);
    None when the shortcut does not take them: a weight that is no float64 array of one
    weight per class (for float64 logits), an ``ignore_index`` that is no int, a
    negative or non-finite weight, a label (not ignored) that is no class."""
    n = labels.size
    y = labels if labels.ndim == 1 else labels.reshape(n)
    if weighting is None:
        return y, _NO_WEIGHTS, float(n)
    weight, ignore_index = weighting
    classes = logits.shape[-1]
    if weight is None:
        weight = _NO_CLASS_WEIGHTS
    elif not (
        type(weight) is np.ndarray
        and weight.dtype.char == logits.dtype.char == _FLOAT64
        and weight.dtype.isnative  # ('>f8' has the character 'd' too; Numba refuses it)
        and weight.shape == (classes,)
        and weight.flags.carray
    ):
        return None
    ignore = ignore_index is not None
    if ignore and (type(ignore_index) is not int or not -(2**62) < ignore_index < 2**62):
        return None
    safe, weights = np.empty(n, dtype=np.int64), np.empty((2, n))
    ok, normalizer = _compiled().label_weights(
        y, classes, weight, ignore_index if ignore else 0, ignore, safe, weights
    )
    return (safe, weights, normalizer) if ok else None


_NO_WEIGHTS = np.empty((0, 0))
"""No class weights and no ignored row (``label_weights``' empty ``weights``)."""
_NO_CLASS_WEIGHTS = np.empty(0)
"""``label_weights``' ``weight`` where there are none (every class weighs 1)."""


def _settings_of(family: SmallFamily, kwargs: dict[str, Any]) -> _Settings | None:
    """:meth:`SmallFamily.settings` without the cache."""
    defaults = family.defaults
    if not defaults.keys() >= kwargs.keys():
        return None
    given = defaults | kwargs
    if type(given["validate"]) is not bool:  # (the full path says what it makes of it)
        return None
    try:
        options = options_of(0.0, 1.0, 0.0, None, given.get("base"), given["reduction"])
        own = family.own(**{name: given[name] for name in family.own_names})
    except (ValueError, TypeError):  # the full path names it, after the arrays' checks
        return None
    return own, options


@functools.lru_cache(maxsize=256, typed=True)
def _cached_settings(family: SmallFamily, **kwargs: Any) -> _Settings | None:
    return _settings_of(family, kwargs)


# ------------------------------------------------------------------ results and rows


def _loss_result(
    found: tuple[bool, float],
    per_row: np.ndarray,
    logits: np.ndarray,
    normalizer: float,
    options: LossOptions,
) -> Any:
    """The loss the full path returns from the compiled ``(ok, value)`` and ``per_row``
    for ``logits`` (a 0-d result is a NumPy scalar, as ``finalize``'s), or None."""
    ok, value = found
    if not ok:
        return None
    if options.reduction == "none":
        return per_row if logits.ndim == 2 else per_row.reshape(logits.shape[:-1])[()]
    number = per_row.dtype.type
    if options.reduction == "parts":
        return LossParts(number(value), number(normalizer) + number(0.0))
    return number(value)


def _per_row(options: LossOptions, n: int, dtype: Any) -> np.ndarray:
    """The compiled call's output of per-row losses (none for a reduced loss)."""
    return np.empty(n, dtype) if options.reduction == "none" else _NO_ROWS[dtype]


_REST = 2
r"""The row of ``rest_of_rows``' sums in its ``rows`` (``_small_numba.REST``; row
``LABEL``, 1, holds :math:`\sigma_y`)."""


def _scaled_log1mexp(
    log_p_y: np.ndarray,
    p_y: np.ndarray,
    expm1: np.ndarray | None,
    near: int,
    gamma: float,
    out: np.ndarray,
) -> None:
    r""":math:`\gamma\log(1 - p_y)` as ``_focal._modulation`` forms it (the argument of its
    np.exp) into the last column of ``out`` (N x k), from np.exp's ``p_y`` (and, where
    ``near`` > 0, np.expm1's ``expm1`` of :math:`\log p_y`): ``_log1mexp``'s far formula
    ``log1p(-exp(a))`` when no :math:`\log p_y` is near 0, else its values from
    ``log1mexp_args64``'s np.log1p and np.log; times :math:`\gamma` (compiled)."""
    compiled = _compiled()
    if not near:
        far = np.log1p(-p_y)
        compiled.scaled_log1mexp64(log_p_y, far, far, gamma, out)
        return
    assert expm1 is not None  # (the caller's np.expm1, where some entry is near 0)
    args = np.empty((2, log_p_y.shape[0]), log_p_y.dtype)
    compiled.log1mexp_args64(log_p_y, p_y, expm1, args)
    compiled.scaled_log1mexp64(log_p_y, np.log1p(args[0]), np.log(args[1]), gamma, out)


# ------------------------------------------------------------------------- the bodies


_Rows = tuple[np.ndarray, np.ndarray, np.ndarray, int]
"""The rows :func:`_on_label_rows` hands a body: ``(labels, log p_y, work, near)``."""
_Body = Callable[[np.ndarray, _Rows, _Labels, Any, LossOptions], Any]
_NO_WORK = np.empty((0, 0))
"""``label_rows64``'s ``out`` of a loss (no probabilities)."""


def _label_rows(logits: np.ndarray, y: np.ndarray, gradient: bool) -> _Rows | None:
    r"""``softmax_rows`` and ``log_prob_of_labels`` of float64 logits, as the generic
    path forms them: ``_small_numba.shift_rows64``, np.exp, ``rest_of_rows``,
    np.log1p (on the values the generic path gives them, into fresh arrays as there),
    then ``label_rows64``; None when a row is suspect. See :func:`_on_label_rows`."""
    classes = logits.shape[-1]
    z = logits if logits.ndim == 2 else logits.reshape(-1, classes)
    n = z.shape[0]
    dtype = z.dtype
    compiled = _compiled()
    shifted = np.empty(z.shape, dtype)
    rows = np.empty((3, n), dtype)  # (rows TOP, LABEL and REST: m, sigma_y and the rest)
    if not _softmax_compiled().shift_rows64(z, y, 1.0, shifted, rows):
        return None
    if not compiled.rest_of_rows(np.exp(shifted), shifted, z, rows):
        return None
    ell = np.log1p(rows[_REST])
    work = np.empty((n, classes + 1), dtype) if gradient else _NO_WORK
    near = compiled.label_rows64(shifted, rows, ell, ell, work)
    return y, ell, work if gradient else shifted, near


def _on_label_rows(body: _Body, *, gradient: bool) -> Callable[..., Any]:
    r"""``compute(logits, labels, own, options)`` for :meth:`SmallFamily.shortcut`:
    ``body(logits, rows, labels, own, options)``, or None when a row is suspect, with
    the rows of :func:`_label_rows`: ``(labels, log p_y, work, near)``, where ``work``
    is, for a ``gradient``, :math:`\sigma - \ell` and :math:`\log p_y` (N x (C + 1)),
    ready for one np.exp (the body may overwrite the last column with another argument
    of exp: :func:`_scaled_log1mexp`), and for a loss :math:`\sigma` (N x C), free to
    hold one column of arguments of exp (its other entries are :math:`\le 0`, so their
    exp cannot warn); ``near``: how many :math:`\log p_y > -\ln 2`. :math:`\log p_y` is
    written over :math:`\ell` (``log1p``'s fresh array)."""

    def compute(logits: np.ndarray, labels: _Labels, own: Any, options: LossOptions) -> Any:
        rows = _label_rows(logits, labels[0], gradient)
        return None if rows is None else body(logits, rows, labels, own, options)

    return compute


def _focal_loss(
    logits: np.ndarray, rows: _Rows, labels: _Labels, own: tuple[float], options: LossOptions
) -> Any:
    _, log_p_y, shifted, near = rows
    gamma = own[0]
    modulation = _NO_WORK  # (for gamma = 0: the modulation is 1)
    if gamma:  # the modulation's argument of exp in the last column of sigma's rows
        expm1 = np.expm1(log_p_y) if near else None
        _scaled_log1mexp(log_p_y, np.exp(log_p_y), expm1, near, gamma, shifted)
        modulation = np.exp(shifted)
    per_row = _per_row(options, log_p_y.shape[0], log_p_y.dtype)
    loss = _compiled().focal_loss64(
        log_p_y,
        modulation,
        labels[1],
        _REDUCTIONS[options.reduction],
        options.log_base or 0.0,
        labels[2],
        per_row,
    )
    return _loss_result(loss, per_row, logits, labels[2], options)


def _focal_gradient(
    logits: np.ndarray, rows: _Rows, labels: _Labels, own: tuple[float], options: LossOptions
) -> np.ndarray:
    y, log_p_y, work, near = rows
    gamma, p_y, expm1 = own[0], np.exp(log_p_y), np.expm1(log_p_y)
    if gamma:  # the modulation's argument of exp beside p's, for one np.exp of both
        _scaled_log1mexp(log_p_y, p_y, expm1, near, gamma, work)
    grad = np.empty(logits.shape, logits.dtype)
    _compiled().focal_gradient64(
        np.exp(work),  # p, then the modulation (p_y for gamma = 0: unused)
        y,
        log_p_y,
        p_y,
        expm1,
        gamma,
        labels[1],
        _REDUCTIONS[options.reduction],
        options.log_base or 0.0,
        labels[2],
        grad if logits.ndim == 2 else grad.reshape(work.shape[0], -1),
    )
    return grad


def _poly_loss(
    logits: np.ndarray, rows: _Rows, labels: _Labels, own: tuple[float], options: LossOptions
) -> Any:
    log_p_y, (_, weights, normalizer) = rows[1], labels
    per_row = _per_row(options, log_p_y.shape[0], log_p_y.dtype)
    reduction = _REDUCTIONS[options.reduction]
    loss = _compiled().poly_loss64(
        log_p_y, np.expm1(log_p_y), own[0], weights, reduction, normalizer, per_row
    )
    return _loss_result(loss, per_row, logits, normalizer, options)


def _poly_gradient(
    logits: np.ndarray, rows: _Rows, labels: _Labels, own: tuple[float], options: LossOptions
) -> np.ndarray:
    y, work, (_, weights, normalizer) = rows[0], rows[2], labels
    grad = np.empty(logits.shape, logits.dtype)
    _compiled().poly_gradient64(
        np.exp(work),
        y,
        np.expm1(rows[1]),
        own[0],
        weights,
        _REDUCTIONS[options.reduction],
        normalizer,
        grad if logits.ndim == 2 else grad.reshape(y.shape[0], -1),
    )
    return grad


# ------------------------- one compiled call: the C library's functions or NumPy's loops


@functools.cache
def libm_is_numpys() -> bool:
    r"""Whether NumPy's float64 np.exp, np.log, np.log1p and np.expm1 are the C library's
    exp, log, log1p and expm1 here, which compiled code calls (``math.exp`` and its
    siblings in Numba, without fast-math or SVML), so that one compiled call can do
    the hybrid's NumPy calls too, with their values bit for bit.

    NumPy 2 runs its own SIMD code for these float64 loops only with AVX-512 (its
    AVX512F exp and log, SVML's log1p and expm1) and on ARM (NEON exp and log);
    elsewhere its loops call the C library, value by value. So: an x86-64 Linux
    machine, NumPy's dispatch (``numpy.lib.introspect.opt_func_info``) naming no
    AVX-512 target for the four loops, Numba not vectorising with SVML, and, as a
    check of all of it, the four functions agreeing bit for bit with NumPy's on 4 x
    4096 probes over the ranges the losses give them (``libm_agrees``). Else the
    hybrid runs (NumPy's calls between compiled ones), as on any machine before.
    """
    if sys.platform != "linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        from numpy.lib.introspect import opt_func_info

        info = opt_func_info(func_name="^(exp|log|log1p|expm1)$", signature="float64")
        targets = [info[name]["dd"]["current"] for name in ("exp", "log", "log1p", "expm1")]
        import numba
    except (ImportError, KeyError, TypeError):
        return False
    if numba.config.USING_SVML or any("AVX512" in t or "X86_V4" in t for t in targets):
        return False
    probes, want = numpys_on_probes(np.float64)
    return bool(_compiled().libm_agrees(probes, want))


def _matrix(x: np.ndarray) -> np.ndarray:
    """``x`` (classes last) as N x C."""
    return x if x.ndim == 2 else x.reshape(-1, x.shape[-1])


_Compute = Callable[[np.ndarray, _Labels, Any, LossOptions], Any]


_LIBM_CALLS = {"focal_loss": 0, "focal_gradient": 1, "poly_loss": 2, "poly_gradient": 3}
"""``_small_label_numba.label_libm``'s ``what`` (the index in its ``_LIBM_CALLS``)."""


def _libm(what: str) -> _Compute:
    """``compute`` of ``what`` (a key of ``_LIBM_CALLS``) by one compiled call,
    ``label_libm``, of float64 logits, with the C library's functions (where
    :func:`libm_is_numpys`) or else NumPy's own loops (``_small_loops.numpy_loops``);
    :data:`_NOT_HERE` where neither serves (the hybrid runs): a loss's ``(ok, value)``
    with its per-row output, or a gradient into a fresh array."""
    number = _LIBM_CALLS[what]
    loss = what.endswith("loss")

    def compute(logits: np.ndarray, labels: _Labels, own: Any, options: LossOptions) -> Any:
        loops = _NO_LOOPS if libm_is_numpys() else numpy_loops()
        if loops is None:
            return _NOT_HERE
        y, weights, normalizer = labels
        rows = _per_row(options, y.shape[0], logits.dtype)
        grad = _NO_WORK if loss else np.empty(logits.shape, logits.dtype)
        found = _compiled().label_libm(
            _matrix(logits),
            y,
            number,
            own[0],
            weights,
            _REDUCTIONS[options.reduction],
            options.log_base or 0.0,
            normalizer,
            rows,
            grad if loss else _matrix(grad),
            loops,
        )
        if loss:
            return _loss_result(found, rows, logits, normalizer, options)
        return grad if found[0] else None

    return compute


_NO_LOOPS = np.empty(0, dtype=np.int64)
"""``label_libm``'s ``loops`` for the C library's functions."""
_NOT_HERE = object()
"""What a one-call ``compute`` returns where it cannot run (the hybrid runs)."""


def _by_route(one_call: _Compute, hybrid: _Compute) -> _Compute:
    """``compute``: ``one_call`` (:func:`_libm`), or ``hybrid`` where it cannot run."""

    def compute(logits: np.ndarray, labels: _Labels, own: Any, options: LossOptions) -> Any:
        found = one_call(logits, labels, own, options)
        return hybrid(logits, labels, own, options) if found is _NOT_HERE else found

    return compute


def _in_float64(compute: _Compute) -> _Compute:
    """``compute`` (of float64 logits) that takes float32 logits as a float64 copy and
    rounds its result to float32 (``_small_narrow.to_float32``): the float64 call's
    values correctly rounded, as the full path gives float32 logits
    (``_widen.upcast``), not float32 arithmetic's (focal's modulation and poly-1's
    :math:`1 - p_y` of a confident row lose tens of ulps)."""

    def compute64(logits: np.ndarray, labels: _Labels, own: Any, options: LossOptions) -> Any:
        if logits.dtype.char == _FLOAT64:
            return compute(logits, labels, own, options)
        return to_float32(compute(logits.astype(np.float64), labels, own, options))

    return compute64


def _exact(what: str, body: _Body, *, gradient: bool) -> _Compute:
    """The ``compute`` of ``what``: :func:`_libm` or the hybrid, float32 in float64."""
    return _in_float64(_by_route(_libm(what), _on_label_rows(body, gradient=gradient)))


focal_loss = _exact("focal_loss", _focal_loss, gradient=False)
"""``softmax_focal_loss`` of a call the shortcut takes, or None."""
focal_gradient = _exact("focal_gradient", _focal_gradient, gradient=True)
"""``softmax_focal_loss_grad`` of a call the shortcut takes, or None."""
poly_loss = _exact("poly_loss", _poly_loss, gradient=False)
"""``poly1_cross_entropy`` of a call the shortcut takes, or None."""
poly_gradient = _exact("poly_gradient", _poly_gradient, gradient=True)
"""``poly1_cross_entropy_grad`` of a call the shortcut takes, or None."""


def _hinge_margins(logits: np.ndarray, y: np.ndarray, margin: float) -> np.ndarray | None:
    """The margins (N x C) by ``hinge_margins`` of ``logits`` and the safe labels ``y``
    (N), or None when a row is suspect."""
    z = logits if logits.ndim == 2 else logits.reshape(-1, logits.shape[-1])
    margins = np.empty_like(z)
    return margins if _compiled().hinge_margins(z, y, margin, margins) else None


def hinge_loss(
    logits: np.ndarray, labels: _Labels, own: tuple[float, bool], options: LossOptions
) -> Any:
    """``multiclass_hinge_loss`` of a call the shortcut takes, or None."""
    margin, weston_watkins = own
    if weston_watkins and logits.shape[-1] > 128:  # (more than one block of the sum)
        return None
    y, weights, normalizer = labels
    if weights.size and options.reduction == "mean" and logits.dtype.char != _FLOAT64:
        return None  # (float32 rows under weights: the full path's float64 quotient)
    margins = _hinge_margins(logits, y, margin)
    if margins is None:
        return None
    per_row = _per_row(options, y.shape[0], logits.dtype)
    reduction = _REDUCTIONS[options.reduction]
    loss = _compiled().hinge_loss(margins, weston_watkins, weights, reduction, normalizer, per_row)
    return _loss_result(loss, per_row, logits, normalizer, options)


def hinge_gradient(
    logits: np.ndarray, labels: _Labels, own: tuple[float, bool], options: LossOptions
) -> Any:
    """``multiclass_hinge_loss_grad`` of a call the shortcut takes, or None."""
    margin, weston_watkins = own
    y, weights, normalizer = labels
    margins = _hinge_margins(logits, y, margin)
    if margins is None:
        return None
    grad = np.empty_like(logits)
    _compiled().hinge_gradient(
        margins,
        logits.reshape(margins.shape),
        y,
        weston_watkins,
        weights,
        _REDUCTIONS[options.reduction],
        normalizer,
        grad.reshape(margins.shape),
    )
    return grad


@functools.cache
def _compiled() -> Any:
    """``_small_label_numba._CALLS`` (its public functions), imported on first use (it
    imports Numba)."""
    from . import _small_label_numba

    return _small_label_numba._CALLS
