r"""The lean path of the small sigmoid losses (issue 13, small inputs).

``sigmoid_cross_entropy``, ``sigmoid_focal_loss`` and their gradients try this path
first (the ``shortcut`` of ``prepared_by``). It takes a call whose logits and targets
are NumPy arrays of one dtype, float32 or float64, native, C-contiguous, aligned and
writable, of one shape with 1 to :data:`MOST_ELEMENTS` entries; whose ``weight`` and
``pos_weight`` (cross-entropy only) are None or such arrays of that dtype, of a shape
whose axes other than 1 are a block of the logits' axes (a scalar, per-class
``(C,)``, per-row ``(N, 1)`` or the logits' own shape); and whose options
(``label_smoothing``, ``reduction``, ``base``, ``validate`` and the focal ``gamma`` and
``alpha``) are valid. Anything else, and any call whose logits are not finite, whose
targets are not in [0, 1] or whose weights are negative, returns None, and the full
path runs and names what is wrong; so does a call that the full path would make warn
(an overflow) or whose result would not be finite.

Bit for bit the full path's values
----------------------------------
The arithmetic is the generic path's (``_sigmoid.py``), in its order and in the call's
dtype, compiled (``_small_sigmoid_numba``: a few calls, each over every entry), and
between those calls NumPy's own np.exp, np.log1p and np.log run on the values the
generic path gives them, as the float64 softmax hybrid does (``_softmax_small``): a
compiled exp or log may differ from NumPy's by an ulp (NumPy has its own SIMD exp and
log, SVML's log1p on AVX-512), so the transcendentals stay NumPy's, on every CPU and
for both dtypes. Where the generic path applies one of them to several arrays (the
gradient's :math:`\sigma(x)` and :math:`\sigma(-x)`; the focal gradient's four), they
go to one np.exp as the rows of one C-contiguous block: a ufunc computes each entry
from that entry alone, with the loop that the dtype and a contiguous layout select, so
the entries are those of separate calls. The sums are NumPy's float64 pairwise sums
(``_small_numba.pairwise_sum``; up to 8192 entries, NumPy's buffer, so that the float32
sums with a float64 accumulator are one pairwise sum as there), rounded to the dtype.

A call is, for hard targets: ``start`` (compiled; ``spread`` for weights), np.exp,
np.log1p, then ``terms`` and np.exp where the call needs more exponentials (the
gradients, the focal loss with :math:`\gamma \ne 0`), and ``finish``; soft targets
with a focal factor add np.log, np.log1p, np.exp and np.log1p for
:math:`\log(1 - p_t)`; weights, ``spread``. The workspace and NumPy's outputs are the
rows of one array (NumPy's ufuncs write into them: the same loop and values as into
fresh arrays), kept per thread by size with the views a call passes on
(:func:`_workspace`; issue 13: no np.empty and no indexing a call), and the compiled
stages are called by their entry points, past Numba's dispatcher (:class:`_Steps`).
``tests/losses/test_issue13_small_sigmoid.py`` pins the values against the full path.

The cross-entropy gradient (float32 and float64) is the exception: after ``start`` (and
``spread``) it calls the full path's own kernel (``_sigmoid_grad_numba.gradient``:
float64, and beyond where :math:`\sigma(x)` meets :math:`t`) on the workspace's
weights, with the full path's float64 ``'mean'`` scale (``wide_normalizer``: the same
pairwise sum, unrounded), so the bits are the full path's by construction. Importing
this module does not import Numba; the first call that is taken does.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from .._checks import check_scalar
from . import _cpu_kernels, _focal_root, _sigmoid_grad
from ._batch import options_of
from ._entry_points import kept_table
from ._reduction import LossParts
from ._softmax_small import REDUCTIONS as _REDUCTIONS  # (as ``_small_numba`` numbers them)
from ._softmax_small import keep_for_thread

__all__ = [
    "ARG",
    "BCE",
    "CE_GRAD",
    "CE_LOSS",
    "COMPLEMENT",
    "C_ALPHA",
    "C_ALPHA_REST",
    "C_GAMMA",
    "C_HALF_EPS",
    "C_HUGE",
    "C_INV_LOG_BASE",
    "C_KEEP",
    "C_LOG_BASE",
    "C_NEG_INF",
    "C_ONE",
    "C_TWO",
    "C_ZERO",
    "DECLINE",
    "EXP",
    "FOCAL_GRAD",
    "FOCAL_LOSS",
    "HIGH",
    "LOG1P_ARG",
    "LOG1P_BELOW",
    "LOG_ABOVE",
    "LOG_Q",
    "MOST_ELEMENTS",
    "NEG_ABS",
    "O_ALPHA",
    "O_BASE",
    "O_GAMMA",
    "O_KIND",
    "O_REDUCTION",
    "O_SMOOTH",
    "POSITIVE",
    "REST",
    "ROWS",
    "SOFT",
    "SP_NEG",
    "SP_POS",
    "TAKEN",
    "TARGET",
    "T_ABOVE",
    "T_BELOW",
    "WEIGHT",
    "X",
    "cross_entropy",
    "cross_entropy_grad",
    "focal_loss",
    "focal_loss_grad",
    "pattern",
]

MOST_ELEMENTS = 8192
"""The most entries a call this path takes (NumPy's default buffer, see above)."""

# The kinds of call, the results of ``start``, and the rows of the workspace (ROWS x N)
# through which the compiled stages hand the elementwise values on.
CE_LOSS, CE_GRAD, FOCAL_LOSS, FOCAL_GRAD = _KINDS = (0, 1, 2, 3)  # gradients odd, focal 2+
DECLINE, TAKEN, SOFT = 0, 1, 2
X, NEG_ABS, REST, TARGET, WEIGHT, POSITIVE, SP_POS, SP_NEG, BCE, LOG_Q = range(10)
T_ABOVE, T_BELOW, LOG_ABOVE, LOG1P_BELOW, HIGH, ARG, LOG1P_ARG = range(10, 17)
EXP = 17  # the arguments of the last np.exp, up to 4 rows
COMPLEMENT = EXP + 4  # 1 - t', of the raw targets with smoothing (_Binary.complement)
ROWS = COMPLEMENT + 1

# The constants of a call, in its dtype (the generic path's Python floats as NumPy
# converts them), and its flags.
C_ZERO, C_ONE, C_TWO, C_KEEP, C_HALF_EPS, C_GAMMA, C_ALPHA, C_ALPHA_REST = range(8)
C_HUGE, C_LOG_BASE, C_INV_LOG_BASE, C_NEG_INF = range(8, 12)
O_REDUCTION, O_SMOOTH, O_BASE, O_ALPHA, O_GAMMA, O_KIND = range(6)
_NONE, _PARTS = _REDUCTIONS["none"], _REDUCTIONS["parts"]

_FLOAT32, _FLOAT64 = np.dtype(np.float32).char, np.dtype(np.float64).char


class _Settings(NamedTuple):
    """The checked options of a call: constants by dtype character, flags by kind."""

    constants: dict[str, np.ndarray | None]  # None: a constant overflows the dtype
    flags: tuple[np.ndarray, ...]  # by kind (O_KIND)
    reduction: int
    exp_rows: tuple[int, ...]  # by kind: the arguments of the last np.exp (none: 0)
    eps: float  # the label smoothing and the log base (the float32 gradient's float64)
    log_base: float | None


def _settings_of(
    *,
    label_smoothing: Any = 0.0,
    reduction: Any = "mean",
    base: Any = None,
    validate: Any = True,
    gamma: Any = 0.0,
    alpha: Any = None,
) -> _Settings | None:
    """The settings of valid options, or None (the full path raises for them)."""
    if validate is not True and validate is not False:
        return None
    try:
        options = options_of(label_smoothing, 1.0, 0.0, None, base, reduction)
        gamma_value = check_scalar(gamma, name="gamma", low=0.0)
        alpha_value = (
            None if alpha is None else check_scalar(alpha, name="alpha", low=0.0, high=1.0)
        )
    except (ValueError, TypeError):
        return None
    eps, log_base = options.label_smoothing, options.log_base
    a = 0.0 if alpha_value is None else alpha_value
    values = [0.0, 1.0, 2.0, 1 - eps, eps / 2, gamma_value, a, 1 - a, 0.0]
    values += [1.0 if log_base is None else log_base]
    values += [1.0 if log_base is None else 1.0 / log_base, -math.inf]
    constants: dict[str, np.ndarray | None] = {}
    for dtype in (np.float32, np.float64):
        with np.errstate(over="ignore"):  # (a gamma beyond float32: not taken for float32)
            array = np.array(values, dtype=dtype)
        array[C_HUGE] = float(np.finfo(dtype).max) / 4  # the focal gradient's clip
        finite = bool(np.isfinite(array[:C_NEG_INF]).all())
        constants[np.dtype(dtype).char] = array if finite else None
    reduction_code = _REDUCTIONS[options.reduction]
    flags = [reduction_code, eps != 0, log_base is not None, alpha_value is not None]
    flags += [gamma_value != 0.0]
    by_kind = tuple(np.array([*flags, kind], dtype=np.int64) for kind in _KINDS)
    exp_rows = (0, 2, 1 if gamma_value != 0.0 else 0, 2)  # CE, its gradient, focal, its
    return _Settings(constants, by_kind, reduction_code, exp_rows, eps, log_base)


@functools.lru_cache(maxsize=256, typed=True)
def _cached_settings(**kwargs: Any) -> _Settings | None:
    """:func:`_settings_of`, kept by the keywords' values and types (1, 1.0 and True are
    different keys, so a bool is still refused)."""
    return _settings_of(**kwargs)


_CE_KEYWORDS = frozenset({"label_smoothing", "reduction", "base", "validate"})
_FOCAL_KEYWORDS = _CE_KEYWORDS | {"gamma", "alpha"}
_DEFAULTS = {False: _settings_of(), True: _settings_of(gamma=2.0)}
"""The settings of a call without options, by whether it is focal (gamma 2)."""


def pattern(
    weight: object, shape: tuple[int, ...], char: str
) -> tuple[np.ndarray, int, int] | None:
    """``(flat, inner, count)``: entry ``i`` of logits of ``shape`` takes weight
    ``flat[(i // inner) % count]``; None for a weight this path does not take."""
    if type(weight) is not np.ndarray:
        return None
    dtype = weight.dtype
    if dtype.char != char or not dtype.isnative or not weight.flags.carray:
        return None
    try:
        inner, count = _PATTERNS[(weight.shape, shape)]
    except KeyError:
        found = _pattern_of(weight.shape, shape)
        if found is None:
            return None
        inner, count = _PATTERNS[(weight.shape, shape)] = found
    return (weight if weight.ndim == 1 else weight.reshape(-1)), inner, count


def _pattern_of(given: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, int] | None:
    """``(inner, count)`` of a weight shape ``given`` whose axes other than 1 are one
    block of ``shape``'s axes (after the leading 1s that broadcasting adds), or None."""
    if len(given) > len(shape):
        return None
    padded = (1,) * (len(shape) - len(given)) + given
    kept = [axis for axis, size in enumerate(padded) if size != 1]
    if not kept:
        return 1, 1
    first, stop = kept[0], kept[-1] + 1
    if padded[first:stop] != shape[first:stop]:
        return None
    return math.prod(shape[stop:]), math.prod(shape[first:stop])


_PATTERNS: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[int, int]] = {}
"""``_pattern_of``'s answers by the two shapes (few: the shapes of a training loop)."""

_EMPTY = {char: np.empty(0, dtype=char) for char in (_FLOAT32, _FLOAT64)}


_Call = tuple[np.ndarray, np.ndarray, tuple[int, ...], Any, _Settings, np.ndarray]
"""A call this path takes: flat logits and targets, the logits' shape, the weights
(None, or ``weight`` and ``pos_weight`` as :func:`pattern` gives them), its settings
and constants."""


def _call(args: tuple[Any, ...], kwargs: dict[str, Any], focal: bool) -> _Call | None:
    """The call's arrays and settings, or None when this path does not take it."""
    if len(args) != 2:
        return None
    x, t = args
    if type(x) is not np.ndarray or type(t) is not np.ndarray:
        return None
    dtype, shape = x.dtype, x.shape
    char = dtype.char
    if (char != _FLOAT64 and char != _FLOAT32) or t.dtype.char != char or t.shape != shape:
        return None
    if not (dtype.isnative and t.dtype.isnative and x.flags.carray and t.flags.carray):
        return None
    n = x.size
    if not (0 < n <= MOST_ELEMENTS) or not x.ndim:
        return None
    weights = None
    if not kwargs:
        settings = _DEFAULTS[focal]
    elif len(kwargs) == 1 and "validate" in kwargs:  # the defaults: no lookup
        validate = kwargs["validate"]
        settings = _DEFAULTS[focal] if validate is True or validate is False else None
    else:
        scalars = kwargs
        if "weight" in kwargs or "pos_weight" in kwargs:
            scalars = dict(kwargs)
            if focal and "pos_weight" in scalars:  # (not a focal keyword, even as None)
                return None
            w, pw = scalars.pop("weight", None), scalars.pop("pos_weight", None)
            no_weight = (_EMPTY[char], 1, 1)
            w_found = no_weight if w is None else pattern(w, shape, char)
            pw_found = no_weight if pw is None else pattern(pw, shape, char)
            if w_found is None or pw_found is None:
                return None
            weights = (*w_found, *pw_found)
        if not (_FOCAL_KEYWORDS if focal else _CE_KEYWORDS).issuperset(scalars):
            return None
        if focal and "gamma" not in scalars:
            scalars = {**scalars, "gamma": 2.0}
        try:
            settings = _cached_settings(**scalars)
        except TypeError:  # unhashable: the full path names it
            return None
    if settings is None:
        return None
    constants = settings.constants[char]
    if constants is None:
        return None
    flat_x = x if x.ndim == 1 else x.reshape(n)
    flat_t = t if t.ndim == 1 else t.reshape(n)
    return flat_x, flat_t, shape, weights, settings, constants


def _run(args: tuple[Any, ...], kwargs: dict[str, Any], kind: int) -> Any:
    """The loss or gradient of a call this path takes, or None.

    The stages of the module docstring; NumPy's ufuncs write into the workspace's rows
    (``out``: the same loop and values as into a fresh array).
    """
    call = _call(args, kwargs, kind >= FOCAL_LOSS)
    compiled = _compiled()
    if call is None or compiled is None:
        return None
    x, t, shape, weights, settings, c = call
    if kind == FOCAL_GRAD and x.dtype == np.float32:
        return None  # (formed in float64: _float32_focal_grad, _sigmoid._widened)
    flags = settings.flags[kind]
    try:  # (issue 13: the thread's workspace and its rows, kept: no np.empty, no indexing)
        space = _KEPT.arrays[x.shape[0], x.dtype.char]
    except (AttributeError, KeyError):  # (this thread's first call; a new size)
        space = _workspace(x.shape[0], x.dtype)
    ws = space.ws
    char = x.dtype.char
    steps = _STEPS.get(char) or _steps_of(char)
    start, terms, finish = compiled.start, compiled.terms, compiled.finish
    start = steps.start if start is steps.start_of else start  # (a patched one runs)
    state = start(x, t, c, flags, ws)
    if state == DECLINE or (weights is not None and not compiled.spread(*weights, c, ws)):
        return None
    if kind == CE_GRAD:
        return _exact_gradient(x, t, ws, settings, compiled, shape)
    np.log1p(np.exp(space.neg_abs), space.rest)  # softplus' log1p(exp(-|x|))
    rows = settings.exp_rows[kind]
    if state == SOFT:  # _log_one_minus_pt's log(where(t > 0, t, 1)), log1p(-where(...))
        np.log(ws[T_ABOVE], ws[LOG_ABOVE])
        np.log1p(ws[T_BELOW], ws[LOG1P_BELOW])
        if not compiled.terms(c, flags, ws, True):
            return None
        np.log1p(np.exp(ws[ARG]), ws[LOG1P_ARG])
        if not compiled.soft_log_q(c, flags, ws):
            return None
    elif rows and not (steps.terms if terms is steps.terms_of else terms)(c, flags, ws, False):
        return None  # (without a last np.exp, ``finish`` calls ``terms``)
    exps = np.exp(space.exp_rows[rows]) if rows else space.exp_rows[0]
    if kind == FOCAL_GRAD:  # its sigma(x) - t as _sigmoid._plain_grad: the exact kernel's
        bound = _sigmoid_grad.CLOSE64 if char == _FLOAT64 else _sigmoid_grad.CLOSE
        difference = _exact_compiled().difference
        entry, picked_of = _DIFFERENCE.get(char) or _difference_of(char)
        difference = entry if difference is picked_of else difference
        difference(x, t, settings.eps, bound, space.plain)
    reduction, loss = settings.reduction, kind % 2 == 0
    out = _EMPTY[char] if loss and reduction != _NONE else np.empty_like(x)
    finish = steps.finish if finish is steps.finish_of else finish
    ok, value, normalizer = finish(exps, c, flags, ws, out)
    if ok and kind == FOCAL_GRAD and value:  # (finish: whether it marked one in ws[HIGH])
        # Entries where the two terms cancel (finish marks them in ws[HIGH]): the full
        # path's refined values (_focal_root), then weighed and scaled by finish again.
        marked = np.flatnonzero(ws[HIGH])
        refined = np.zeros((1, x.shape[0]), dtype=x.dtype)
        refined[0, marked] = _focal_root.refined(x[marked], ws[TARGET, marked], c[C_GAMMA])
        exps = np.concatenate((exps, refined))
        ok, value, normalizer = finish(exps, c, flags, ws, out)
    if not ok:
        return None
    if not loss or reduction == _NONE:
        return out if len(shape) == 1 else out.reshape(shape)
    scalar = x.dtype.type
    if reduction == _PARTS:
        return LossParts(total=scalar(value), normalizer=scalar(normalizer))
    return scalar(value)


class _Workspace(NamedTuple):
    """A workspace (``ROWS`` x N, the dtype) and the views of it that a call passes on."""

    ws: np.ndarray
    neg_abs: np.ndarray  # ws[NEG_ABS]
    rest: np.ndarray  # ws[REST]
    exp_rows: tuple[np.ndarray, ...]  # ws[EXP : EXP + k] by k (0 to 4)
    plain: np.ndarray  # ws[EXP + 2]


def _workspace(n: int, dtype: np.dtype) -> _Workspace:
    """A new workspace for ``n`` entries of ``dtype``, kept for this thread (by ``n`` and
    the dtype's character) where ``n`` is at most :data:`_KEPT_ENTRIES` and it keeps fewer
    than 16 sizes (``_softmax_small.keep_for_thread``).

    A call uses it from :func:`start` to its last :func:`finish`, between which run
    NumPy's ufuncs and compiled functions (and ``_focal_root.refined``), none of which
    calls this path, and hands none of it back (its results are new arrays); other
    threads have their own. Every row a stage reads, an earlier stage of the same call
    wrote, as in a new ``np.empty`` (whose memory is often the last call's)."""
    ws = np.empty((ROWS, n), dtype=dtype)
    space = _Workspace(
        ws, ws[NEG_ABS], ws[REST], tuple(ws[EXP : EXP + k] for k in range(5)), ws[EXP + 2]
    )
    return keep_for_thread(_KEPT, (n, ws.dtype.char), space) if n <= _KEPT_ENTRIES else space


_KEPT = threading.local()
"""Per thread, ``arrays``: :func:`_workspace` by ``(n, dtype character)``, at most 16
sizes (``_softmax_small.keep_for_thread``, the small calls' one rule)."""
_KEPT_ENTRIES = 512
"""The most entries of a kept workspace (``ROWS`` x 512 float64: 84 KiB; a larger call's
``np.empty`` is a small part of its time)."""


class _Steps(NamedTuple):
    """The compiled stages of a call of one dtype, called past Numba's dispatcher
    (``_entry_points``): they take exactly the types :func:`_run` passes (C-contiguous
    1-d logits, targets, constants and int64 flags, the 2-d workspace, a 2-d ``exps``,
    a 1-d ``out``; Python floats and a bool). ``_run`` looks the functions up on their
    modules at each call and takes an entry point only for the dispatcher it was picked
    from (``*_of``): a function patched there (the tests' spies and mutants) runs as it
    is. The float64 focal gradient's ``_sigmoid_grad_numba.difference`` is picked apart,
    at its first call (:func:`_difference_of`)."""

    start: Callable[..., int]  # _small_sigmoid_numba.start
    terms: Callable[..., bool]  # _small_sigmoid_numba.terms
    finish: Callable[..., tuple[bool, Any, Any]]  # _small_sigmoid_numba.finish
    start_of: Callable[..., int]  # the dispatchers
    terms_of: Callable[..., bool]
    finish_of: Callable[..., tuple[bool, Any, Any]]


def _steps_of(char: str) -> _Steps:
    """The :class:`_Steps` of the dtype of character ``char``, picked for one entry and
    kept (not where a function is no dispatcher: patched, or no JIT).

    Issue 13 (first-call latency): this module's three stages only; a dtype's first
    loss call no longer imports ``_sigmoid_grad_numba`` (and builds its tables) nor
    loads ``difference``, which only the float64 focal gradient calls."""
    compiled = _compiled()
    assert compiled is not None  # (``_run`` asked)
    x, ws = np.zeros(1, char), np.zeros((ROWS, 1), char)
    c, flags = np.zeros(C_NEG_INF + 1, char), np.zeros(O_KIND + 1, np.int64)
    calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
        (compiled.start, (x, x, c, flags, ws)),
        (compiled.terms, (c, flags, ws, False)),
        (compiled.finish, (ws, c, flags, ws, x)),
    ]
    own = [compiled.start, compiled.terms, compiled.finish]
    return kept_table(_Steps._make, calls, own, _STEPS, char)


def _difference_of(char: str) -> tuple[Callable[..., None], Callable[..., None]]:
    """``_sigmoid_grad_numba.difference``'s entry point for the dtype of character
    ``char`` (float64: the only focal gradient :func:`_run` forms) and the dispatcher it
    was picked from, kept in :data:`_DIFFERENCE` as :func:`_steps_of` keeps its table."""
    exact = _exact_compiled()
    x = np.zeros(1, char)
    calls = [(exact.difference, (x, x, 0.0, _sigmoid_grad.CLOSE64, x))]
    return kept_table(
        lambda found: (found[0], found[1]), calls, [exact.difference], _DIFFERENCE, char
    )


_DIFFERENCE: dict[str, tuple[Callable[..., None], Callable[..., None]]] = {}
"""``difference``'s entry point and dispatcher by dtype character (:func:`_difference_of`)."""


_STEPS: dict[str, _Steps] = {}
"""The :class:`_Steps` by dtype character (:func:`_steps_of`)."""


def _exact_gradient(
    x: np.ndarray,
    t: np.ndarray,
    ws: np.ndarray,
    settings: _Settings,
    compiled: ModuleType,
    shape: tuple[int, ...],
) -> np.ndarray | None:
    r"""The float32 or float64 gradient by the full path's kernel
    (``_sigmoid_grad_numba``: float64 and beyond where :math:`\sigma(x)` meets
    :math:`t`), on the weights :func:`start` and ``spread`` put in the workspace, with
    the full path's float64 scale."""
    n = x.shape[0]
    reduction, log_base = settings.reduction, settings.log_base
    scale = 1.0
    if reduction == _REDUCTIONS["mean"]:
        normalizer = compiled.wide_normalizer(ws)
        scale = 1.0 / normalizer if normalizer > 0 else normalizer * 0.0
    if log_base is not None:
        scale = scale / log_base
    out = np.empty_like(x)
    _exact_compiled().gradient(
        x, t, (ws[WEIGHT], 1, n), (ws[POSITIVE], 1, n), settings.eps, scale, out
    )
    return out if len(shape) == 1 else out.reshape(shape)


def cross_entropy(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """:func:`sigmoid_cross_entropy` of a small call, or None (the full path's)."""
    return _run(args, kwargs, CE_LOSS)


def cross_entropy_grad(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """:func:`sigmoid_cross_entropy_grad` of a small call, or None."""
    return _run(args, kwargs, CE_GRAD)


def focal_loss(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """:func:`sigmoid_focal_loss` of a small call, or None."""
    return _run(args, kwargs, FOCAL_LOSS)


def focal_loss_grad(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """:func:`sigmoid_focal_loss_grad` of a small call, or None."""
    if args and type(args[0]) is np.ndarray and args[0].dtype == np.float32:
        return _float32_focal_grad(args, kwargs)
    return _run(args, kwargs, FOCAL_GRAD)


def _float32_focal_grad(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A float32 focal gradient as the full path forms it (``_sigmoid._widened``): the
    float64 call's, rounded once (hostile20: in float32 its two terms cancelled, 47
    ulps off). Float32 logits, targets and weights (None or a float32 array, which the
    full path widens exactly); anything else is None (the full path)."""
    if len(args) != 2 or type(args[1]) is not np.ndarray or args[1].dtype != np.float32:
        return None
    weight = kwargs.get("weight")
    if weight is not None:
        if type(weight) is not np.ndarray or weight.dtype != np.float32:
            return None
        kwargs = {**kwargs, "weight": weight.astype(np.float64)}
    grad = _run((args[0].astype(np.float64), args[1].astype(np.float64)), kwargs, FOCAL_GRAD)
    return None if grad is None else grad.astype(np.float32)


@functools.cache
def _compiled() -> ModuleType | None:
    """``_small_sigmoid_numba``, imported on first use (it imports Numba); None without
    Numba."""
    if not _cpu_kernels.available():
        return None
    from . import _small_sigmoid_numba

    return _small_sigmoid_numba


@functools.cache
def _exact_compiled() -> ModuleType:
    """``_sigmoid_grad_numba`` (after :func:`_compiled`, so with Numba)."""
    from . import _sigmoid_grad_numba

    return _sigmoid_grad_numba
