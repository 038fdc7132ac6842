"""Every input check in crossent, and its wording.

Checks that only look at metadata (types, shapes, options) always run.  Checks that
need a pass over the data (ranges, finiteness, normalisation) run unless the caller
passes ``validate=False``, but the range of class labels, which always runs (an index
out of bounds is no value to skip checking: ``check_labels``).  The fast path of each
data check is one or two reductions (no boolean temporaries of the input's size); only
when a check fails is the data searched again, to name the first offending index and
its value.

Messages name the argument in backticks, the requirement, the value seen and the
fix where one is known.  Indices are given in the caller's layout.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Iterator
from types import ModuleType
from typing import Any, Literal

import numpy as np

from . import _xp
from ._hints import non_numeric
from ._xp import (
    Array,
    accumulation_dtype,
    cannot_copy_to_host,
    device,
    numpy_sum_dtype,
    size,
)
from .errors import InputError, InputTypeError

__all__ = [
    "REDUCTIONS",
    "Form",
    "ValuelessArrayError",
    "check_axis",
    "check_base",
    "check_broadcastable",
    "check_choice",
    "check_class_weight",
    "check_classes",
    "check_distribution",
    "check_eps",
    "check_flag",
    "check_form",
    "check_integer",
    "check_labels",
    "check_log_distribution",
    "check_logits",
    "check_logits_of_rows",
    "check_non_negative",
    "check_not_nan",
    "check_out",
    "check_probabilities",
    "check_reduction",
    "check_same_classes",
    "check_scalar",
    "label_shape_hint",
    "log_base_in",
    "not_ignored",
    "outside_classes",
    "row_offset",
    "row_sum_tolerance",
    "truth_of",
]

Form = Literal["probs", "log_probs", "logits"]
_FORMS: tuple[str, ...] = ("probs", "log_probs", "logits")


# --------------------------------------------------------------------------- options


def check_base(base: float | None) -> float | None:
    """Validate a logarithm base and return ``log(base)``, or None for nats.

    Raises
    ------
    InputTypeError
        ``base`` is not a real number (a bool, a string, a tuple).
    InputError
        ``base`` is not finite, not positive, or 1.
    """
    if base is None:
        return None
    if isinstance(base, bool) or not isinstance(base, int | float | np.integer | np.floating):
        raise InputTypeError(
            f"`base` must be a positive number other than 1, or None; got {base!r}"
        )
    value = _float_of(base)
    if not (math.isfinite(value) and value > 0 and value != 1):
        raise InputError(
            f"`base` must be a finite positive number other than 1 (2 for bits, None for "
            f"nats); got {base!r}"
        )
    return math.log(value)


def log_base_in(base: object, log_base: float | None, dtype: Any) -> Any:
    r"""``log_base`` (:func:`check_base` of ``base``) as the divisor of results in the
    compute ``dtype``: ``log(base)`` formed in that dtype where it is a NumPy float wider
    than float64 (long double), else ``log_base`` itself, the Python float.

    The float64 ``log(base)`` is 1.1e-16 (relative) off :math:`\ln b`; a long double
    result divided by it carried that error, 300 long double ulps (a
    hostile pass: ``entropy(p, base=2)`` of long double ``p`` was 3.35e-17 off against
    6e-20 in nats). The float32 and float64 paths keep the Python float, bit for bit.
    """
    if log_base is None or not (
        isinstance(dtype, np.dtype) and dtype.kind == "f" and dtype.itemsize > 8
    ):
        return log_base
    return np.log(np.asarray(base, dtype=dtype))[()]


def _float_of(value: Any) -> float:
    """``float(value)`` of a real option, ``+-inf`` for a Python integer past float64's
    range (``float(10**400)`` raises ``OverflowError``: a hostile pass, every float option
    of the losses and measures let it escape), so the range checks name it."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def check_eps(eps: float | None, *, q_form: str = "probs") -> float | None:
    """Validate the opt-in clipping floor of the compatibility ``eps=`` option."""
    if eps is None:
        return None
    if isinstance(eps, bool) or not isinstance(eps, int | float | np.integer | np.floating):
        raise InputError(f"`eps` must be a number in (0, 1) or None; got {eps!r}")
    value = _float_of(eps)
    if not (0 < value < 1):
        raise InputError(f"`eps` must be in (0, 1) or None; got {eps!r}")
    if q_form != "probs":
        raise InputError(
            f"`eps` clips probabilities and needs q_form='probs'; got q_form={q_form!r}. "
            "Log-probabilities and logits never need clipping."
        )
    return value


def check_form(form: str, *, name: str) -> Form:
    """Validate an input-form keyword such as ``q_form``."""
    if form not in _FORMS:
        raise InputError(
            f"`{name}` must be one of 'probs', 'log_probs', 'logits'; got {form!r}. "
            "crossent never guesses the form of an input from its values."
        )
    return form  # type: ignore[return-value]


def check_axis(axis: int, ndim: int, *, name: str) -> int:
    """Normalise ``axis`` for an array of ``ndim`` dimensions.

    Raises
    ------
    InputTypeError
        ``axis`` is not an integer (a bool, a float, a tuple, a string).
    InputError
        ``axis`` is out of range, or the array a scalar.
    """
    if type(axis) is not int and (isinstance(axis, bool) or not isinstance(axis, int | np.integer)):
        raise InputTypeError(f"`axis` must be an integer; got {axis!r}")
    if ndim == 0:
        raise InputError(
            f"`{name}` must have at least one dimension (the classes along `axis`); got a scalar"
        )
    if not -ndim <= axis < ndim:
        raise InputError(f"`axis` {axis} is out of range for `{name}` with {ndim} dimensions")
    return int(axis) % ndim


def check_classes(classes: int, *, name: str, axis: int) -> None:
    """A class axis must hold at least one class: a distribution over nothing is none."""
    if classes < 1:
        raise InputError(
            f"`{name}` has 0 classes along axis {axis}; a distribution needs at least one class"
        )


def check_same_classes(
    shape_a: tuple[int, ...], shape_b: tuple[int, ...], *, names: tuple[str, str], axis: int
) -> tuple[int, ...]:
    """Check that two inputs have the same number of classes and broadcastable batches.

    ``shape_a`` and ``shape_b`` have their class axis last.  Batch dimensions broadcast
    (a single ``q`` against many ``p`` rows); the class axis never does.  Returns the
    broadcast batch shape.
    """
    a, b = names
    if shape_a[-1] != shape_b[-1]:
        raise InputError(
            f"`{a}` and `{b}` must have the same number of classes along axis {axis}; "
            f"got {shape_a[-1]} and {shape_b[-1]}"
        )
    if shape_a[:-1] == shape_b[:-1]:
        return tuple(shape_a[:-1])
    try:
        return tuple(np.broadcast_shapes(shape_a[:-1], shape_b[:-1]))
    except ValueError:
        raise InputError(
            f"`{a}` and `{b}` have batch shapes {shape_a[:-1]} and {shape_b[:-1]} (class axis "
            "removed), which do not broadcast"
        ) from None


# ------------------------------------------------------------------------ tolerances


_LOG_NORMALISER_BOUND = 1024.0
r"""The largest :math:`|\log Z|` of a log-sum-exp normaliser whose rounding the row-sum
tolerance covers (a Gaussian naive Bayes on 64 pixels reaches 274)."""

_COMPUTATION_TOLERANCE_CAP = 1e-3
"""The computation part of the row-sum tolerance never exceeds this (see below)."""


def row_sum_tolerance(dtype: Any, classes: int, *, xp: ModuleType) -> float:
    r"""How far from 1 a row of ``classes`` probabilities of ``dtype`` may sum.

    .. math::

        \tau = \frac{\epsilon_s}{2} + \frac{\epsilon_h}{2}
        + \min\Big(\epsilon_c\,\big(K + 1 + \tfrac{\Lambda}{2}\big),\ 10^{-3}\Big),
        \qquad \Lambda = 1024,

    with :math:`\epsilon_s` the machine epsilon of the storage dtype, :math:`\epsilon_c`
    that of the computation (float32 for float16 and bfloat16, which frameworks
    accumulate in float32), :math:`u = \epsilon / 2` the unit roundoff and :math:`K` the
    number of classes.  Derivation: a row that ordinary model code normalised exactly,
    then rounded, differs from 1 by at most the sum of

    1. storage rounding: each :math:`p_k` rounded to the storage dtype moves the sum by at
       most :math:`u_s \sum_k p_k = u_s = \epsilon_s / 2`, whatever :math:`K`;
    2. normalisation by a sum, :math:`p_k = x_k / \sum_j x_j`: the computed sum is off by
       at most :math:`(K - 1)\,u_c` relatively (recursive summation, the worst case;
       pairwise or tree sums do far better) and each division by :math:`u_c`, so
       :math:`K u_c`;
    3. or normalisation by a log-sum-exp, :math:`p_k = \exp(a_k - \log Z)`
       (``scipy.special.softmax``, ``predict_proba`` of scikit-learn's naive Bayes and
       linear models): the rounding of :math:`\log Z` itself scales every
       :math:`p_k` by :math:`1 + u_c |\log Z|`, and the sum inside it and the ``exp``
       calls add about :math:`(K + 2)\,u_c`; :math:`|\log Z| \le \Lambda`
       (``_LOG_NORMALISER_BOUND``) covers naive Bayes on hundreds of features;
    4. this check's own float32-or-wider sum of the row: at most :math:`(K - 1)\,u_c`;
    5. for storage narrower than the computation (float16, bfloat16;
       :math:`\epsilon_h = \epsilon_s` there, 0 otherwise): the normalising sum itself
       stored in that dtype, as NumPy's and PyTorch's ``p / p.sum(-1, keepdims=True)``
       on float16 return it, scales every :math:`p_k` by :math:`1 + u_s`.  Without this
       term 2% of float16 softmax rows normalised in float16 (and some rows renormalised
       by that very ``p / p.sum(...)``) were refused: 0.99939 is off by 6.1e-4, the
       tolerance was 5.5e-4.

    Items 2 to 4 give :math:`u_c (2K + 2 + \Lambda) = \epsilon_c (K + 1 + \Lambda/2)`.
    For large :math:`K` this worst-case linear growth is far from what summation does
    in practice (error :math:`\sim\sqrt K\,u` or :math:`\log K\, u`; Higham and Mary
    2019, doi:10.1137/18M1226312: ``torch.softmax`` in float32 on 128000 classes is off
    by 1.9e-5), so the computation term is capped at :math:`10^{-3}`
    (``_COMPUTATION_TOLERANCE_CAP``), reached from about 8000 float32 classes.  The
    tolerance therefore always rejects what is not rounding: rows summing to 1.01,
    logits or unnormalised scores passed as probabilities, and probabilities computed in
    bfloat16 and stored as float32 (off by about 1e-3: renormalise those explicitly,
    ``renormalize=True``).

    Values: float64 rows of 10 classes 1.2e-13 (scikit-learn's ``GaussianNB`` on digits
    reaches 6.7e-15); float32 rows of 100 classes 7.3e-5; float64 rows of 1000 classes
    3.4e-13; float16 rows 9.8e-4 and bfloat16 rows 7.8e-3, plus the float32 term.
    """
    if xp is _xp.compat_numpy:
        return _numpy_row_sum_tolerance(np.dtype(dtype), classes)
    info = xp.finfo(dtype) if xp.isdtype(dtype, "real floating") else None
    return _tolerance(info, classes)


@functools.lru_cache(maxsize=256)
def _numpy_row_sum_tolerance(dtype: np.dtype, classes: int) -> float:
    return _tolerance(np.finfo(dtype) if dtype.kind == "f" else None, classes)


def _tolerance(info: Any, classes: int) -> float:
    """:func:`row_sum_tolerance` from the ``finfo`` of the storage dtype (None: not floating)."""
    eps_storage = float(info.eps) if info is not None else 0.0
    if info is None or info.bits >= 32:
        eps_compute = eps_storage or float(np.finfo(np.float64).eps)
    else:
        eps_compute = float(np.finfo(np.float32).eps)
    computation = eps_compute * (max(classes, 1) + 1 + _LOG_NORMALISER_BOUND / 2)
    # item 5: a normalising sum rounded to a storage dtype narrower than the computation
    stored_sum = eps_storage / 2 if eps_storage > eps_compute else 0.0
    return eps_storage / 2 + stored_sum + min(computation, _COMPUTATION_TOLERANCE_CAP)


# ------------------------------------------------------------------------ data checks


class ValuelessArrayError(Exception):
    """Raised by :func:`truth_of` for an array that has no values to read: ``kind`` is
    ``"meta"`` (a PyTorch meta tensor), ``"traced"`` (an array traced by ``jax.jit``,
    ``jax.vmap`` or compiled code) or ``"vmap"`` (a batched tensor of
    ``torch.func.vmap``)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def truth_of(value: Array) -> bool:
    """``bool(value)``, or :class:`ValuelessArrayError` where the array has no values (the
    one place that tells those arrays apart from a real failure)."""
    if type(value) is np.bool_:
        return bool(value)
    if getattr(getattr(value, "device", None), "type", None) == "meta":
        raise ValuelessArrayError("meta")
    try:
        return bool(value)
    except Exception as exc:
        if any(word in type(exc).__name__ for word in ("Tracer", "Concretization")):
            raise ValuelessArrayError("traced") from exc
        if "vmap" in str(exc) and "data-dependent control flow" in str(exc):
            # PyTorch's torch.func.vmap: a batched tensor has no one value to branch on.
            raise ValuelessArrayError("vmap") from exc
        raise


_VALUELESS = {
    "meta": "validation reads the values of its inputs, which a meta tensor does not have; "
    "pass validate=False to check only shapes and dtypes",
    "traced": "validation reads the values of its inputs, which a traced array (inside "
    "jax.jit, jax.vmap or a compiled function) does not have; pass validate=False there "
    "and validate outside, or before, the traced function",
    "vmap": "validation reads the values of its inputs, which a batched tensor inside "
    "torch.func.vmap does not give; pass validate=False there and validate outside the "
    "vmapped function (crossent.torch's losses do so themselves)",
}


def _truth(value: Array) -> bool:
    """``bool(value)``, explaining the failure for arrays without values (meta tensors,
    arrays traced by ``jax.jit`` or compiled code, ``torch.func.vmap``'s batched
    tensors)."""
    try:
        return truth_of(value)
    except ValuelessArrayError as valueless:
        raise InputTypeError(_VALUELESS[valueless.kind]) from valueless.__cause__


def _any(mask: Array, *, xp: ModuleType) -> bool:
    if type(mask) is np.bool_:
        return bool(mask)
    if type(mask) is np.ndarray:
        return bool(mask.any())
    return _truth(xp.any(mask))


def _first_index(mask: Array, *, xp: ModuleType) -> tuple[int, ...]:
    """Index of the first True entry of ``mask`` in C order."""
    flat = xp.reshape(xp.astype(mask, xp.int8), (-1,))
    position = int(xp.argmax(flat))
    return tuple(int(i) for i in np.unravel_index(position, tuple(mask.shape)))


_ROW_OFFSET: contextvars.ContextVar[int] = contextvars.ContextVar("row_offset", default=0)


@contextlib.contextmanager
def row_offset(first_row: int) -> Iterator[None]:
    """Within this block, messages number rows from ``first_row`` (for data seen in chunks)."""
    token = _ROW_OFFSET.set(first_row)
    try:
        yield
    finally:
        _ROW_OFFSET.reset(token)


def _shift_rows(index: tuple[int, ...]) -> tuple[int, ...]:
    offset = _ROW_OFFSET.get()
    if offset == 0 or len(index) == 0:
        return index
    return (index[0] + offset, *index[1:])


def _caller_index(index: tuple[int, ...], axis: int | None) -> tuple[int, ...]:
    """Map an index into the class-axis-last layout back to the caller's layout."""
    if axis is None or len(index) == 0:
        return _shift_rows(index)
    *batch, cls = index
    batch.insert(axis, cls)
    return _shift_rows(tuple(batch))


def _format_index(index: tuple[int, ...]) -> str:
    return str(index[0]) if len(index) == 1 else str(index)


def _describe_row(index: tuple[int, ...]) -> str:
    if len(index) == 0:
        return "the distribution"
    return f"row {_format_index(_shift_rows(index))}"


def _fail_at(x: Array, mask: Array, message: str, *, xp: ModuleType, axis: int | None) -> None:
    index = _first_index(mask, xp=xp)
    if getattr(x, "requires_grad", False):  # (PyTorch's warning on float() of such, issue 13)
        x = x.detach()
    value = float(x[index])
    where = _format_index(_caller_index(index, axis))
    raise InputError(message.format(value=value, index=where))


def _check_entries(
    x: Array, *, name: str, xp: ModuleType, axis: int | None, hint: str = ""
) -> None:
    """Entries must be probabilities: finite and in [0, 1]; ``hint`` ends the message of an
    entry below 0 or above 1 (:func:`_form_hint`)."""
    lo, hi = _extremes(x, xp=xp)
    lo_ok = _truth(lo >= 0)
    hi_ok = _truth(hi <= 1)
    if lo_ok and hi_ok:
        return
    if xp.isdtype(x.dtype, "real floating"):
        if _any(xp.isnan(x), xp=xp):
            _fail_at(x, xp.isnan(x), f"`{name}` contains NaN at index {{index}}", xp=xp, axis=axis)
        if _any(xp.isinf(x), xp=xp):
            _fail_at(
                x,
                xp.isinf(x),
                f"`{name}` must be finite; got {{value}} at index {{index}}",
                xp=xp,
                axis=axis,
            )
    if not lo_ok:
        _fail_at(
            x,
            x < 0,
            f"`{name}` must be non-negative (probabilities); got {{value!r}} at index "
            f"{{index}}{hint}",
            xp=xp,
            axis=axis,
        )
    _fail_at(
        x,
        x > 1,
        f"`{name}` must be probabilities in [0, 1]; got {{value!r}} at index {{index}}{hint}",
        xp=xp,
        axis=axis,
    )


def _extremes(x: Array, *, xp: ModuleType) -> tuple[Any, Any]:
    """The minimum and maximum of ``x`` (0.0 for an empty ``x``); NaN propagates."""
    if type(x) is np.ndarray:  # the ufuncs' own reductions: ndarray.min wraps them in Python
        return (np.minimum.reduce(x, None), np.maximum.reduce(x, None)) if x.size else (0.0, 0.0)
    if not size(x):
        return 0.0, 0.0
    return xp.min(x), xp.max(x)


def _largest(x: Array, *, xp: ModuleType) -> Any:
    """The maximum of ``x`` (0.0 for an empty ``x``); NaN propagates."""
    if type(x) is np.ndarray:
        return x.max() if x.size else 0.0
    return xp.max(x) if size(x) else 0.0


_FORM_ARGUMENTS = {"p": "p_form", "q": "q_form", "probs": "form", "teacher": "teacher_form"}
"""The argument that names the form of each input that has one (crossent never guesses it)."""


def _form_hint(name: str) -> str:
    """The end of an out-of-range probability's message: the ``*_form`` argument that says
    the values are logits or log-probabilities ('' for an input that has no form)."""
    form = _FORM_ARGUMENTS.get(name)
    if form is None:
        return ""
    return f". If these are logits or log-probabilities, say so: {form}='logits' or 'log_probs'"


def check_probabilities(x: Array, *, name: str, xp: ModuleType, hint: str = "") -> None:
    """Elementwise probabilities: finite, in [0, 1] (``hint`` ends the message of an entry
    out of [0, 1])."""
    _check_entries(x, name=name, xp=xp, axis=None, hint=hint)


def _check_row_sums(
    totals: Array, *, name: str, xp: ModuleType, dtype: Any, classes: int, what: str, hint: str
) -> None:
    tolerance = row_sum_tolerance(dtype, classes, xp=xp)
    deviation = xp.abs(totals - 1)
    if not _any(deviation > tolerance, xp=xp):
        return
    index = _first_index(deviation > tolerance, xp=xp)
    # the sum and its error as computed: a long double sum of 1 - 1e-17 read as a float
    # was "sums to 1.0 (|error| 0 > tolerance 5.62e-17)"
    total, error = totals[index], float(deviation[index])
    wide = isinstance(total, np.floating) and total.dtype.itemsize > 8  # long double
    shown = str(total) if wide else repr(float(total))
    raise InputError(
        f"`{name}` must sum to 1 along `axis`; {_describe_row(index)} {what} {shown} "
        f"(|error| {error:.3g} > tolerance {tolerance:.3g} for {dtype} with "
        f"{classes} classes). crossent never renormalises silently: {hint}, or pass "
        "validate=False."
    )


def check_distribution(
    x: Array, *, name: str, xp: ModuleType, axis: int, storage_dtype: Any
) -> None:
    """Probability vectors along the last axis: entries in [0, 1], rows summing to 1.

    ``x`` has its class axis last; ``axis`` is where it was in the caller's layout;
    ``storage_dtype`` is the caller's dtype, which sets the tolerance.
    """
    if type(x) is np.ndarray and _numpy_distribution_passes(x, storage_dtype):
        return
    _check_entries(x, name=name, xp=xp, axis=axis, hint=_form_hint(name))
    if type(x) is np.ndarray:
        totals = np.add.reduce(x, axis=-1, dtype=numpy_sum_dtype(x.dtype))
    else:
        totals = xp.sum(x, axis=-1, dtype=accumulation_dtype(xp.float32, xp=xp, device=device(x)))
    _check_row_sums(
        totals,
        name=name,
        xp=xp,
        dtype=storage_dtype,
        classes=x.shape[-1],
        what="sums to",
        hint="normalise it first (p / p.sum(axis, keepdims=True); renormalize=True in the "
        "evaluation functions, --renormalize in the CLI)",
    )


def _numpy_distribution_passes(x: np.ndarray, storage_dtype: Any) -> bool:
    """Whether NumPy rows ``x`` surely pass :func:`check_distribution`, in two or three
    reductions (issue 13: per-call overhead); False sends them to the full check.

    Every row sum is within the tolerance of 1 and the smallest entry is >= 0 (NaN
    fails both). Then no entry exceeds 1 if no row sum does: a float sum of
    non-negative numbers is at least each of them, rounding being monotone.
    """
    if not x.size:
        return False
    totals = np.add.reduce(x, -1, numpy_sum_dtype(x.dtype))
    tolerance = _numpy_row_sum_tolerance(np.dtype(storage_dtype), x.shape[-1])
    if x.ndim == 1:
        largest = smallest = float(totals)
    elif totals.size == 1:  # one row in a matrix: no reductions of one number
        largest = smallest = totals.item()
    else:
        largest = float(np.maximum.reduce(totals, None))
        smallest = float(np.minimum.reduce(totals, None))
    if not (largest - 1 <= tolerance and 1 - smallest <= tolerance):
        return False
    if not np.minimum.reduce(x, None) >= 0:
        return False
    return largest <= 1 or bool(np.maximum.reduce(x, None) <= 1)


def _check_no_nan_or_posinf(x: Array, *, name: str, xp: ModuleType, axis: int, what: str) -> Any:
    """Refuse NaN and ``+inf`` entries; returns the largest entry (0.0 for none)."""
    hi = _largest(x, xp=xp)
    if _truth(hi < math.inf):  # False for NaN and +inf
        return hi
    if _any(xp.isnan(x), xp=xp):
        _fail_at(x, xp.isnan(x), f"`{name}` contains NaN at index {{index}}", xp=xp, axis=axis)
    _fail_at(
        x,
        x == math.inf,
        f"`{name}` ({what}) must not be +inf; got +inf at index {{index}}",
        xp=xp,
        axis=axis,
    )


def check_log_distribution(
    x: Array, *, name: str, xp: ModuleType, axis: int, lse: Array, storage_dtype: Any
) -> None:
    """Log-probability vectors along the last axis: no NaN or +inf, logsumexp = 0.

    ``lse`` is the row-wise logsumexp (computed by the caller, who needs it anyway).
    ``-inf`` entries (probability zero) are allowed.  ``log(sum p)`` differs from
    ``sum p - 1`` only at second order, so the row-sum tolerance applies unchanged.
    An entry above 0 is a probability above 1 and is refused, as ``probs`` refuses one
    (``[2e-16, -inf]`` passed the row-sum check and gave an entropy of -2e-16 and a
    perplexity of 0.9999999999999998, below their bounds 0 and 1; issue 13).
    """
    hi = _check_no_nan_or_posinf(x, name=name, xp=xp, axis=axis, what="log-probabilities")
    if _truth(hi > 0):
        _fail_at(
            x,
            x > 0,
            f"`{name}` (log-probabilities) must be at most 0, the log of a probability of at "
            "most 1; got {value!r} at index {index}. If these are logits, say so: "
            f"{_FORM_ARGUMENTS.get(name, 'form')}='logits'",
            xp=xp,
            axis=axis,
        )
    _check_row_sums(
        xp.exp(lse[..., 0]),
        name=name,
        xp=xp,
        dtype=storage_dtype,
        classes=x.shape[-1],
        what="has exp-sum",
        hint="normalise it first (log_p - logsumexp(log_p)), or pass the values as logits",
    )


def check_logits(x: Array, *, name: str, xp: ModuleType, axis: int) -> None:
    """Logits along the last axis: no NaN or +inf, and not a whole row of ``-inf``."""
    if type(x) is np.ndarray and x.size:
        # One reduction answers both questions when the rows pass (issue 13: overhead):
        # every row maximum is finite (NaN propagates, +inf and a row of -inf do not pass).
        row_max = np.maximum.reduce(x, -1)
        if x.ndim == 1 or row_max.size == 1:  # one row: a Python number (issue 13)
            if -math.inf < (row_max if x.ndim == 1 else row_max.item()) < math.inf:
                return
        elif np.minimum.reduce(row_max, None) > -math.inf and (
            np.maximum.reduce(row_max, None) < math.inf
        ):
            return
    _check_no_nan_or_posinf(x, name=name, xp=xp, axis=axis, what="logits")
    if size(x) == 0:
        return
    row_max = x.max(axis=-1) if type(x) is np.ndarray else xp.max(x, axis=-1)
    dead = row_max == -math.inf
    if _any(dead, xp=xp):
        index = _first_index(dead, xp=xp)
        raise InputError(
            f"`{name}` (logits) has {_describe_row(index)} entirely -inf, which is no distribution"
        )


def check_logits_of_rows(
    x: Array, active: Array | None, *, name: str, xp: ModuleType, axis: int
) -> None:
    """:func:`check_logits` of the rows that count: ``active`` (the batch shape of ``x``,
    classes last; None: every row) False marks an ignored row, whose logits no loss or
    gradient reads, so a NaN or an infinity there is no error (issue 13, as PyTorch,
    which raises none either). The message names the entry in ``x``'s layout. For the
    error paths: the ignored rows are replaced by zeros in a copy of ``x``."""
    if active is not None:
        x = xp.where(active[..., None], x, xp.zeros_like(x))
    check_logits(x, name=name, xp=xp, axis=axis)


# ------------------------------------------------------------------------ loss options

REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none", "parts")


def check_reduction(reduction: str) -> str:
    """Validate ``reduction``."""
    if reduction not in REDUCTIONS:
        raise InputError(
            f"`reduction` must be one of 'mean', 'sum', 'none', 'parts'; got {reduction!r}"
        )
    return reduction


def check_choice(value: str, choices: tuple[str, ...], *, name: str) -> str:
    """Validate a string option: one of ``choices``, named in the message ("'a' or 'b'")."""
    if value not in choices:
        *others, last = (repr(choice) for choice in choices)
        listed = f"{', '.join(others)} or {last}" if others else last
        raise InputError(f"`{name}` must be {listed}; got {value!r}")
    return value


def check_scalar(
    value: object,
    *,
    name: str,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real option in ``[low, high]`` (``low_open``/``high_open`` exclude an end)."""
    if type(value) is not float and (
        isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating)
    ):
        # A traced option has no value to check or branch on (hasattr first: Dynamo
        # traces this check, and cannot walk a str's __mro__)
        if hasattr(value, "shape") and cannot_copy_to_host(value):
            raise InputError(
                f"`{name}` must be a concrete Python number; got a traced "
                f"{type(value).__name__} (jax.jit, jax.grad, torch.func). Options are static: "
                "under jax.jit name it in `static_argnames`, or close over it"
            )
        raise InputError(f"`{name}` must be a real number; got {value!r}")
    number = _float_of(value)
    too_low = number <= low if low_open else number < low
    too_high = number >= high if high_open else number > high
    if not math.isfinite(number) or too_low or too_high:
        bracket = "(" if low_open else "["
        upper = "inf)" if math.isinf(high) else f"{high:g}" + (")" if high_open else "]")
        raise InputError(f"`{name}` must be in {bracket}{low:g}, {upper}; got {value!r}")
    return number


def check_flag(value: object, *, name: str = "validate") -> bool:
    """A yes/no option such as ``validate``: Python's ``True``/``False`` or a NumPy bool.

    Anything else is refused rather than read by its truth value, which would turn
    ``validate="no"`` into ``True`` and ``validate=None`` into ``False`` (issue 13).

    Raises
    ------
    InputTypeError
        ``value`` is not a bool.
    """
    if value is True or value is False:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    raise InputTypeError(f"`{name}` must be True or False; got {value!r}")


def check_integer(value: object, *, name: str, low: int | None = None) -> int:
    """An integer option (Python or NumPy integer, not bool), at least ``low`` if given.

    Also read while ``torch.compile`` traces (crossent.torch's ``chunk_size``), hence the
    tuples in ``isinstance``."""
    wanted = {None: "an integer", 0: "a non-negative integer", 1: "a positive integer"}.get(
        low, f"an integer >= {low}"
    )
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or (low is not None and value < low)
    ):
        raise InputError(f"`{name}` must be {wanted}; got {value!r}")
    return int(value)


_LABEL_HINTS = {
    "b": (
        "Pass labels.astype(np.int64) (a PyTorch tensor: labels.long()): False is class 0, "
        "True class 1."
    ),
}
"""What to do instead, by the NumPy dtype kind of labels that are not integers (floats
get the caller's ``float_hint``; names, :func:`._hints.non_numeric`'s)."""

_LOSS_FLOAT_HINT = (
    "For probability targets use the *_with_targets variant; for float ids, cast them first."
)


def label_shape_hint(
    shape: tuple[int, ...], batch_shape: tuple[int, ...], classes: int, values_name: str
) -> str:
    """The fix for labels of ``shape`` where ``batch_shape`` belongs, for the two
    mistakes with a common reading (else ``""``): one-hot labels, the predictions' own
    shape (``labels.argmax`` along the class axis, or the probability-target variant);
    and labels whose shape is the batch shape with one size replaced by the number of
    classes (the classes lie along another axis than ``axis``: logits ``(C, N)`` or
    PyTorch's ``(N, C, T)`` under the default ``axis=-1``).  A hint, never a reading:
    nothing is guessed.
    """
    ndim = len(shape)
    if ndim == len(batch_shape) + 1:
        one_hot_axes = [
            k - ndim
            for k in range(ndim)
            if shape[k] == classes and shape[:k] + shape[k + 1 :] == batch_shape
        ]
        if one_hot_axes:
            return (
                f". One-hot labels? Pass the class ids, labels.argmax(axis={one_hot_axes[-1]}), "
                "or, for the softmax cross-entropy, pass the rows as probability targets "
                "to softmax_cross_entropy_with_targets"
            )
    if ndim == len(batch_shape):
        differ = [k for k in range(ndim) if shape[k] != batch_shape[k]]
        if len(differ) == 1 and shape[differ[0]] == classes:
            return (
                f". The classes are read along `axis` (here of size {classes}); if "
                f"`{values_name}` holds them along another axis, pass that one as axis= "
                "(PyTorch's layout (N, C, ...) is axis=1)"
            )
    return ""


def check_labels(
    labels: Array,
    *,
    xp: ModuleType,
    batch_shape: tuple[int, ...],
    classes: int,
    ignore_index: int | None,
    check_range: bool = True,
    float_hint: str = _LOSS_FLOAT_HINT,
    values_name: str = "logits",
) -> None:
    """Integer class labels of shape ``batch_shape`` in ``[0, classes)`` or ``ignore_index``.

    The range is checked whatever the caller's ``validate`` says (issue 13): a label
    outside ``[0, classes)`` is an index out of bounds, which no option may let through
    (it wrapped round to the last class, or read another row's entry in a kernel), and
    the check is one min/max pass over ``N`` labels against the ``N x classes`` work.
    ``check_range`` False leaves the range to a caller whose kernel flags a label that
    is not a class in its own row loop, and calls this again (to name it) when one is.
    Labels whose values cannot be read (meta tensors, arrays traced by ``jax.jit``)
    pass unchecked, as with ``validate=False`` before.
    ``float_hint`` ends the message for non-integer labels (what to do instead);
    ``values_name`` is the argument whose batch shape the labels must have.
    """
    if not _is_integral(labels.dtype, xp=xp):
        if getattr(labels.dtype, "kind", "") in "USO" and isinstance(labels, np.ndarray):
            raise InputTypeError(
                non_numeric(
                    labels, name="labels", wanted="integer class ids", got=f"dtype {labels.dtype}"
                )
            )
        hint = _LABEL_HINTS.get(getattr(labels.dtype, "kind", ""), float_hint)
        if labels.dtype == getattr(xp, "bool", None):
            hint = _LABEL_HINTS["b"]
        raise InputTypeError(
            f"`labels` must be integer class ids; got dtype {labels.dtype}. {hint}"
        )
    if tuple(labels.shape) != tuple(batch_shape):
        raise InputError(
            f"`labels` must have the batch shape of `{values_name}` {tuple(batch_shape)} (the "
            f"class axis removed); got {tuple(labels.shape)}"
            + label_shape_hint(tuple(labels.shape), tuple(batch_shape), classes, values_name)
        )
    if ignore_index is not None and (
        isinstance(ignore_index, bool) or not isinstance(ignore_index, int | np.integer)
    ):
        raise InputTypeError(f"`ignore_index` must be an integer or None; got {ignore_index!r}")
    if not check_range or size(labels) == 0:
        return
    if type(labels) is np.ndarray:
        if labels.size == 1:  # one label: one Python comparison (issue 13: overhead)
            if 0 <= labels.item() < classes:
                return
        elif (
            np.minimum.reduce(labels, axis=None) >= 0
            and np.maximum.reduce(labels, axis=None) < classes
        ):
            return  # two reductions, no temporaries (issue 13: per-call overhead)
    try:
        bad = outside_classes(labels, classes, xp=xp)
        if ignore_index is not None:
            kept = not_ignored(labels, ignore_index, xp=xp)
            bad = bad if kept is None else bad & kept
        found = _any(bad, xp=xp)
    except InputTypeError:
        # Labels without values (a meta tensor, an array traced by jax.jit): nothing
        # can be checked, nor read out of bounds by crossent (its kernels take NumPy);
        # the library's own indexing decides.  With ``validate`` the logits' check has
        # refused such input already, naming the fix.
        return
    if not found:
        return
    index = _first_index(bad, xp=xp)
    value = int(labels[index])
    lo, hi = int(xp.min(labels)), int(xp.max(labels))
    allowed = f" or ignore_index={ignore_index}" if ignore_index is not None else ""
    raise InputError(
        f"`labels` must be integers in [0, {classes}){allowed}; got values in [{lo}, {hi}] "
        f"({_describe_row(index)} has {value})"
    )


def _label_bounds(labels: Array, *, xp: ModuleType) -> tuple[int, int]:
    """The smallest and largest value of the labels' integer dtype (kept per dtype:
    ``np.iinfo`` takes 0.6 us, a tenth of a small loss call)."""
    dtype = labels.dtype
    if not isinstance(dtype, np.dtype):  # (other libraries' dtypes may not mix in a dict)
        info = xp.iinfo(dtype)
        return int(info.min), int(info.max)
    bounds = _NUMPY_BOUNDS.get(dtype)
    if bounds is None:
        info = np.iinfo(dtype)
        bounds = _NUMPY_BOUNDS[dtype] = (int(info.min), int(info.max))
    return bounds


_NUMPY_BOUNDS: dict[np.dtype[Any], tuple[int, int]] = {}
"""``_label_bounds`` by NumPy dtype (a handful of integer dtypes)."""


def outside_classes(labels: Array, classes: int, *, xp: ModuleType) -> Array:
    """``(labels < 0) | (labels >= classes)``, with no comparison against a number the
    labels' dtype cannot hold (issue 13: array-api-strict raised ``OverflowError`` for
    int8 labels of 300 classes; such a comparison is constant, so it is left out)."""
    low, high = _label_bounds(labels, xp=xp)
    bad = labels < 0 if low < 0 else xp.zeros_like(labels, dtype=xp.bool)
    if classes <= high:
        bad = bad | (labels >= classes)
    return bad


def not_ignored(labels: Array, ignore_index: int, *, xp: ModuleType) -> Array | None:
    """``labels != ignore_index``, or None where no label can equal it: an
    ``ignore_index`` outside the labels' dtype is never formed in it (issue 13: JAX
    wrapped -100 to 156 in uint8, so the valid label 156 was ignored, a wrong loss, and
    array-api-strict raised ``OverflowError``)."""
    low, high = _label_bounds(labels, xp=xp)
    if not low <= ignore_index <= high:
        return None
    return labels != ignore_index


def _is_integral(dtype: Any, *, xp: ModuleType) -> bool:
    if isinstance(dtype, np.dtype):
        return dtype.kind in "iu"
    return bool(xp.isdtype(dtype, "integral"))


def check_class_weight(weight: Array, *, xp: ModuleType, classes: int, validate: bool) -> None:
    """Class weights: shape ``(classes,)``, finite and non-negative."""
    if tuple(weight.shape) != (classes,):
        raise InputError(
            f"`weight` must have shape ({classes},), one weight per class; "
            f"got {tuple(weight.shape)}"
        )
    if validate:
        check_non_negative(weight, name="weight", xp=xp)


def check_non_negative(x: Array, *, name: str, xp: ModuleType) -> None:
    """Weights: finite and non-negative (NaN fails too)."""
    if size(x) == 0:
        return
    # Integers are finite: no ``< inf`` (issue 13: a TypeError in array-api-strict, which
    # promotes no Python float with integers).
    integral = _is_integral(x.dtype, xp=xp)
    if _truth(xp.min(x) >= 0) and (integral or _truth(xp.max(x) < math.inf)):
        return
    _fail_at(
        x,
        x < 0 if integral else ~((x >= 0) & (x < math.inf)),
        f"`{name}` must be finite and non-negative; got {{value!r}} at index {{index}}",
        xp=xp,
        axis=None,
    )


def check_not_nan(x: Array, *, name: str, xp: ModuleType) -> None:
    """No NaN anywhere (``+-inf`` allowed: a sigmoid logit of ``+inf`` means probability 1)."""
    if type(x) is np.ndarray:  # without isdtype's dispatch (issue 13: per-call overhead)
        if x.size == 0 or x.dtype.kind != "f" or not np.isnan(np.minimum.reduce(x, axis=None)):
            return  # the minimum is NaN exactly when an entry is (one reduction)
    elif size(x) == 0 or not xp.isdtype(x.dtype, "real floating"):
        return
    if _truth(xp.any(xp.isnan(x))):
        _fail_at(x, xp.isnan(x), f"`{name}` contains NaN at index {{index}}", xp=xp, axis=None)


def check_broadcastable(
    shape: tuple[int, ...], to: tuple[int, ...], *, name: str, target: str
) -> None:
    """``shape`` must broadcast to ``to`` without changing it."""
    try:
        result = tuple(np.broadcast_shapes(shape, to))
    except ValueError:
        result = None
    if result != tuple(to):
        raise InputError(
            f"`{name}` of shape {tuple(shape)} must broadcast to the shape of `{target}` "
            f"{tuple(to)}"
        )


def check_out(out: object, logits: object, *, dtype: Any) -> None:
    """A buffer for a result shaped like ``logits``: a C-contiguous, writable NumPy array of
    ``dtype`` that does not overlap ``logits``; or, for PyTorch ``logits``, a tensor of
    their device, shape and the result's ``dtype`` (:func:`_check_torch_out`)."""
    if _is_torch_tensor(out) and _is_torch_tensor(logits):
        _check_torch_out(out, logits, dtype=dtype)
        return
    if not isinstance(out, np.ndarray) or not isinstance(logits, np.ndarray):
        raise InputTypeError(
            "`out` is supported when `logits` and `out` are NumPy arrays, or both PyTorch "
            f"tensors; got `out` of type {type(out).__name__} with `logits` of type "
            f"{type(logits).__name__}"
        )
    if type(out) is not np.ndarray:  # a MaskedArray's float32 gradient: NumbaTypeError
        raise InputTypeError(
            f"`out` must be a plain numpy.ndarray, not a subclass; got {type(out).__name__} "
            "(pass np.asarray(out), a view of its memory)"
        )
    if out.shape != logits.shape:
        raise InputError(f"`out` must have the shape of `logits` {logits.shape}; got {out.shape}")
    if out.dtype != np.dtype(dtype):
        got = str(out.dtype)
        if out.dtype.newbyteorder("=") == np.dtype(dtype):  # ('>f8' printed as '>f8')
            got += f", a byte-swapped {np.dtype(dtype)}: give it native byte order"
        raise InputTypeError(f"`out` must have dtype {np.dtype(dtype)}; got {got}")
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise InputError("`out` must be a C-contiguous, writable array")
    if np.may_share_memory(out, logits):
        raise InputError("`out` must not overlap `logits`: crossent never overwrites its inputs")


def _is_torch_tensor(x: object) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "untyped_storage")


def _check_torch_out(out: Any, logits: Any, *, dtype: Any) -> None:
    """A PyTorch ``out``: the device, shape and ``dtype`` of the result, not requiring
    grad, sharing no memory with ``logits``.  Small CPU tensors take the host route
    (:mod:`crossent._torch_host`), which writes into ``out``'s NumPy view; the torch
    path refused the same ``out`` ("supported when `logits` and `out` are NumPy arrays")
    for tensors past the route's size, grad-requiring logits, or any other device:
    whether an ``out`` was taken depended on the size of the batch (issue 13)."""
    if tuple(out.shape) != tuple(logits.shape):
        raise InputError(
            f"`out` must have the shape of `logits` {tuple(logits.shape)}; got {tuple(out.shape)}"
        )
    if out.dtype != dtype:
        raise InputTypeError(f"`out` must have dtype {dtype}; got {out.dtype}")
    if out.device != logits.device:
        raise InputError(
            f"`out` must be on the device of `logits` ({logits.device}); got {out.device}"
        )
    if out.requires_grad:
        raise InputError("`out` must not require grad: the gradient is written into it in place")
    if out.device.type != "meta" and out.untyped_storage().data_ptr() == (
        logits.untyped_storage().data_ptr()
    ):
        raise InputError("`out` must not overlap `logits`: crossent never overwrites its inputs")
