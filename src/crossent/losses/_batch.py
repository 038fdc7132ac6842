r"""The batch machinery every loss family shares: options, layout, labels, masks, reduction.

Package-internal API (names without an underscore are meant to be used by every module
of :mod:`crossent.losses` and by :mod:`crossent.torch`):

* :class:`LossOptions` (frozen) and :func:`loss_options`: the validated options of the
  softmax losses (smoothing, temperature, z-loss, soft-cap, unit, reduction).
* :func:`prepare_logits`: the logits with the class axis last, in the compute dtype.
* :class:`Labels` and :func:`prepare_labels`: integer labels checked once, with the
  mask of the rows that count, the labels made safe to index with (ignored rows
  point at class 0 and are masked later), the class weights and each row's weight.
* :func:`class_mask`: the one-hot pattern of integer ids, as booleans.
* :class:`Batch`: the layout (the caller's class axis), the example weights
  :math:`\omega_i` (0 on ignored rows), the normaliser :math:`\sum_i \omega_i`, and the
  end of every loss and gradient: :meth:`Batch.reduce` (zero the ignored rows,
  reduce, convert the unit) and :meth:`Batch.finish_gradient` (fold in the
  reduction's scale and an upstream gradient, zero the ignored rows, move the
  class axis back).

* :func:`prepared_by`: a public function from one prepare step and a body; a loss and
  its gradient twin are two bodies over the same prepare step, so their signature,
  checks and argument forwarding are written once (in the prepare step). A body's own
  keyword-only parameters (a gradient's ``out=``) end the signature; ``hide`` keeps an
  entry point's keywords (``fused=``) out of it.
* :func:`options_of`: :func:`loss_options` with its arguments in order, each distinct
  set of options checked once (issue 13: per-call overhead).
* :class:`LossKeywords`: the keyword group of the losses of logits, declared once
  (``axis, weight, ignore_index, label_smoothing, reduction, temperature, z_loss,
  soft_cap, base, validate``), as a call gave it; ``options()`` checks its
  :class:`LossOptions`, :func:`label_batch` the rest.
* :func:`keywords_from`: a function ``own(*arrays, given, /, *, own_options)`` whose
  public signature takes the group's fields (less ``hide``) as keywords and that gets
  them as one :class:`LossKeywords`; nothing runs before ``own``, so the softmax entry
  points (``_softmax.py``) keep their fused path's order of checks.
* :func:`labelled_batch`: the prepare step of logits with integer labels, with the
  group but the softmax options (``axis, weight, ignore_index, reduction, base,
  validate``).
* :func:`extends`: a family's prepare step from a shared one (such as
  :func:`labelled_batch`) and a function of its result that declares only the
  family's own options (focal's ``gamma``); the signature is composed from both.

A loss family is then a module with one prepare function (the public signature, the
option checks, and a :class:`Batch` from :func:`prepare_logits` and, for integer
labels, :func:`prepare_labels`) and two bodies decorated with ``@prepared_by(prepare)``
that compute per-row losses and per-row gradients with respect to the class axis (last)
and end with ``batch.reduce(loss)`` and ``batch.finish_gradient(grad)``.

Value-and-gradient entry points (in ``_softmax.py``, their keywords those of
:class:`LossKeywords` through :func:`keywords_from`; what ``crossent.torch`` calls, with
NumPy views of contiguous CPU tensors or any Array API arrays)::

    prepare_softmax_labels(logits, labels, /, *, axis=-1, weight=None, ignore_index=None,
                           label_smoothing=0.0, reduction="mean", temperature=1.0,
                           z_loss=0.0, soft_cap=None, base=None, validate=True,
                           fused=True) -> SoftmaxProblem
    prepare_softmax_targets(logits, targets, /, *, axis=-1, weight=None,
                            label_smoothing=0.0, reduction="mean", temperature=1.0,
                            z_loss=0.0, soft_cap=None, base=None,
                            validate=True) -> SoftmaxProblem
    SoftmaxProblem.loss()       # reduced loss (per row for reduction="none"; LossParts
                                # for "parts")
    SoftmaxProblem.row_loss()   # per row, nats, 0 on ignored rows
    SoftmaxProblem.row_lse      # per-row log-sum-exp of z' = cap(z)/T, batch shape
    softmax_gradient(problem, *, upstream=None, out=None) -> Array
        # d/dlogits of sum_i upstream_i L_i, normaliser and unit folded in; upstream None
        # (1), a scalar, or an array of the batch shape (reduction="none"); the fused
        # write_gradient kernel when the problem is fused; into ``out`` when given.
        # Also named softmax_label_gradient and softmax_target_gradient.

The per-row option terms (smoothing, class weights, z-loss, soft-cap and temperature),
shared by the generic path, the fused path and these entry points, are in ``_terms.py``.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NamedTuple, TypeVar

import numpy as np

from .._checks import (
    check_axis,
    check_base,
    check_class_weight,
    check_flag,
    check_labels,
    check_logits,
    check_logits_of_rows,
    check_reduction,
    check_scalar,
    log_base_in,
    not_ignored,
    outside_classes,
)
from .._sides import prepare, ready
from .._torch_host import exported, on_host
from .._xp import (
    Array,
    cannot_copy_to_host,
    compute_dtype,
    device,
    namespace,
    reduce_sum,
    reshape,
    size,
    where_zero,
)
from ..errors import InputError
from ._docs import render
from ._reduction import reduce_loss, scale_for_reduction

__all__ = [
    "SOFTMAX_OPTIONS",
    "Batch",
    "FrontDoor",
    "LabelBatch",
    "Labels",
    "LossKeywords",
    "LossOptions",
    "batch_for",
    "class_mask",
    "extends",
    "keywords_from",
    "label_batch",
    "labelled_batch",
    "loss_options",
    "options_of",
    "prepare_labels",
    "prepare_logits",
    "prepare_weight",
    "prepared_by",
    "zero_where_ignored",
]


@dataclass(frozen=True)
class LossOptions:
    """The validated options of one call (each field documented in ``loss_options``)."""

    label_smoothing: float = 0.0
    temperature: float = 1.0
    z_loss: float = 0.0
    soft_cap: float | None = None
    log_base: float | None = None  # the natural log of ``base``; None for nats
    reduction: str = "mean"
    base: float | None = None  # ``base`` as given (checked), for :meth:`log_base_in`

    def log_base_in(self, dtype: Any) -> Any:
        """The divisor of results in the compute ``dtype``: ``log_base``, formed in that
        dtype where it is wider than float64 (:func:`~crossent._checks.log_base_in`)."""
        return log_base_in(self.base, self.log_base, dtype)


def loss_options(
    *,
    label_smoothing: float = 0.0,
    temperature: float = 1.0,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    base: float | None = None,
    reduction: str = "mean",
) -> LossOptions:
    """Check the options as the public functions take them, and freeze them.

    ``label_smoothing`` in [0, 1]; ``temperature`` > 0; ``z_loss`` >= 0; ``soft_cap``
    None or > 0; ``base`` None (nats) or a valid logarithm base; ``reduction`` one of
    ``'mean'``, ``'sum'``, ``'none'``, ``'parts'``. The same as :func:`options_of`.
    """
    return options_of(label_smoothing, temperature, z_loss, soft_cap, base, reduction)


def options_of(
    label_smoothing: float,
    temperature: float,
    z_loss: float,
    soft_cap: float | None,
    base: float | None,
    reduction: str,
    /,
) -> LossOptions:
    """:func:`loss_options` with its arguments in order (those of :class:`LossOptions`).

    The checked options are kept by their values and types (issue 13: a call on a small
    batch should not pay for six checks and a dataclass each time; 1, 1.0, True and
    ``np.float64(1)`` are different keys, so a bool is still rejected); a value that
    cannot be a key (an array) is checked afresh, and rejected there. Only values of
    plain Python types are kept: a NumPy scalar (``np.float32(0.1)``, ``np.str_('sum')``)
    is checked afresh each time, since a key holding one makes ``torch.compile`` fail to
    trace the lookup in this table ("failed to convert numpy.ndarray to Tensor").

    While ``torch.compile`` traces (:func:`_tracing`) the table is not read: a traced
    lookup or store guards on it (its length), so the compiled loss was built again on
    each of its first calls, and after each call anywhere that added options, until
    Dynamo's recompile limit sent it back to eager (issue 13). The checks run on Python
    values only, so tracing them costs nothing at run time; a float there is read by its
    value (:func:`_by_value`).
    """
    values = (label_smoothing, temperature, z_loss, soft_cap, base, reduction)
    types = tuple(map(type, values))
    if not _CACHED_TYPES.issuperset(types):
        return _check_options(values)
    if _tracing():
        return _check_options(tuple(map(_by_value, values)))
    key = (values, types)
    try:
        return _CHECKED_OPTIONS[key]
    except KeyError:
        checked = _check_options(values)
    except TypeError:  # unhashable
        return _check_options(values)
    if len(_CHECKED_OPTIONS) < 256:
        _CHECKED_OPTIONS[key] = checked
    return checked


_CHECKED_OPTIONS: dict[tuple[tuple[object, ...], tuple[type, ...]], LossOptions] = {}
"""The options :func:`options_of` has checked, by argument values and types."""
_CACHED_TYPES = frozenset({float, int, bool, str, type(None)})
"""The argument types whose values :func:`options_of` keeps (plain Python values)."""


def _tracing() -> bool:
    """Whether Dynamo (``torch.compile``, ``torch.export``) traces this call (torch's
    public ``torch.compiler.is_dynamo_compiling``, a constant there: a third of
    ``is_compiling``'s cost in eager calls; False without torch imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and bool(torch.compiler.is_dynamo_compiling())


def _by_value(option: object) -> object:
    """A float option by its value: the float that ``torch.compile(dynamic=True)`` makes
    symbolic (an argument's, a default's) becomes a constant (``float.hex`` reads the
    value, a guard), for the checks' ``math.isfinite``, which cannot take a symbol;
    anything else as is (the checks judge it)."""
    return float.fromhex(option.hex()) if type(option) is float else option


def _check_options(values: tuple[Any, ...]) -> LossOptions:
    label_smoothing, temperature, z_loss, soft_cap, base, reduction = values
    return LossOptions(
        label_smoothing=check_scalar(label_smoothing, name="label_smoothing", low=0.0, high=1.0),
        temperature=check_scalar(temperature, name="temperature", low=0.0, low_open=True),
        z_loss=check_scalar(z_loss, name="z_loss", low=0.0),
        soft_cap=None
        if soft_cap is None
        else check_scalar(soft_cap, name="soft_cap", low=0.0, low_open=True),
        log_base=check_base(base),
        reduction=check_reduction(reduction),
        base=base,
    )


def class_mask(ids: Array, classes: int, *, xp: ModuleType) -> Array:
    """``mask[..., c] = (c == ids[...])``: the one-hot pattern of integer ``ids``, as booleans."""
    if type(ids) is np.ndarray:  # without array-api-compat's arange wrapper (issue 13)
        return np.arange(classes) == ids[..., None]
    return xp.arange(classes, device=device(ids)) == ids[..., None]


def prepare_logits(
    logits: Array,
    axis: int,
    *,
    xp: ModuleType,
    validate: bool,
    extra: tuple[Array, ...] = (),
    name: str = "logits",
) -> tuple[Array, int, Any]:
    """Logits with the class axis last, in the compute dtype (of ``logits`` and ``extra``).

    Returns ``(values, axis, dtype)`` with ``axis`` normalised (non-negative).
    """
    if ready(logits, axis=axis) and all(
        type(e) is np.ndarray and e.dtype == logits.dtype for e in extra
    ):
        # Already float32 or float64 with the classes last, and so are ``extra`` (issue 13:
        # per-call overhead): every check of the long way but the values' passes holds.
        last = logits.ndim - 1
        if validate:
            check_logits(logits, name=name, xp=xp, axis=last)
        return logits, last, logits.dtype
    normalised = check_axis(axis, logits.ndim, name=name)
    dtype = compute_dtype(logits, *extra, xp=xp, names=(name,) + ("targets",) * len(extra))
    side = prepare(
        logits, name=name, form="logits", axis=normalised, xp=xp, dtype=dtype, validate=validate
    )
    return side.values, normalised, dtype


def prepare_weight(
    weight: object, *, xp: ModuleType, classes: int, dtype: Any, validate: bool, like: Array
) -> Array | None:
    """Class weights as an array of ``like``'s library and device, in the compute dtype.

    Raises :class:`~crossent.InputTypeError` for weights that are not real numbers (a
    complex weight lost its imaginary part in the cast; strings and objects reached
    NumPy's comparisons: issue 13)."""
    if weight is None:
        return None
    _, (_, w) = namespace(like, weight, names=("logits", "weight"))
    if type(w) is not np.ndarray or w.dtype.kind not in "fiub":  # NumPy's: no call
        compute_dtype(w, xp=xp, names=("weight",))  # the dtype check alone
    check_class_weight(w, xp=xp, classes=classes, validate=validate)
    return xp.astype(w, dtype) if w.dtype != dtype else w


@dataclass
class Labels:
    """Integer labels after their checks, for logits of ``classes`` classes (last axis)."""

    safe: Array  # the labels, ignored rows pointing at class 0 (their terms are masked)
    active: Array | None  # the rows that count (None: all of them)
    weight: Array | None  # the class weights w (compute dtype), or None for all ones
    row_weight: Array  # w_{y_i}, keepdims; 0 on ignored rows: the example weight omega_i
    unweighted: bool = False  # every row_weight is 1 (no class weights, no ignored row)
    given_weight: object = None  # ``weight`` as the caller gave it (its digits, for float64)

    def float64_weights(self) -> tuple[np.ndarray, np.ndarray | None]:
        r"""NumPy labels' :math:`\omega_i` (flat) and :math:`w` in float64, from the
        weights as given: the fused gradient's coefficients are formed from them
        (issue 13), not from their rounding to float32."""
        omega = np.reshape(self.row_weight, (-1,)).astype(np.float64, copy=False)
        if self.weight is None:
            return omega, None
        weight = np.asarray(self.given_weight, dtype=np.float64)
        if self.given_weight is self.weight:
            return omega, weight  # not converted: omega holds w_y exactly
        omega = weight[np.reshape(self.safe, (-1,))]
        if self.active is not None:
            omega = np.where(np.reshape(self.active, (-1,)), omega, 0.0)
        return omega, weight


def prepare_labels(
    labels: Array,
    *,
    logits: Array,
    values: Array,
    dtype: Any,
    weight: object,
    ignore_index: int | None,
    validate: bool,
    xp: ModuleType,
    check_range: bool = True,
) -> Labels:
    """Check ``labels`` against ``values`` (the prepared logits, classes last).

    ``logits`` is the caller's array (for the library and device of ``weight``).
    ``check_range`` False leaves the labels' range (a pass over them) to a caller that
    checks it another way (the fused kernels flag a label that is not a class).
    """
    classes = values.shape[-1]
    check_labels(
        labels,
        xp=xp,
        batch_shape=tuple(values.shape[:-1]),
        classes=classes,
        ignore_index=ignore_index,
        check_range=check_range,
    )
    w = prepare_weight(weight, xp=xp, classes=classes, dtype=dtype, validate=validate, like=logits)
    active = None if ignore_index is None else not_ignored(labels, ignore_index, xp=xp)
    safe = labels if active is None else where_zero(active, labels, xp=xp)
    bad = _unchecked_bad_labels(labels, classes, active, xp=xp)
    if bad is not None:
        safe = where_zero(~bad, safe, xp=xp)
    shape = (*labels.shape, 1)
    if w is None:
        row_weight = _ones(shape, dtype, like=values, xp=xp)
    else:
        row_weight = reshape(xp.take(w, reshape(safe, (-1,), xp=xp)), shape, xp=xp)
    row_weight = zero_where_ignored(row_weight, active, xp=xp)
    if bad is not None:
        nan = xp.asarray(float("nan"), dtype=row_weight.dtype, device=device(row_weight))
        row_weight = xp.where(reshape(bad, shape, xp=xp), nan, row_weight)
    return Labels(
        safe=safe,
        active=active,
        weight=w,
        row_weight=row_weight,
        unweighted=w is None and active is None and bad is None,
        given_weight=weight,
    )


def _unchecked_bad_labels(
    labels: Array, classes: int, active: Array | None, *, xp: ModuleType
) -> Array | None:
    """The rows whose label is no class nor ignored, for labels whose values cannot be
    read (an array traced by ``jax.jit``, ``jax.grad``, ``jax.vmap``): None otherwise.

    :func:`check_labels` refuses such labels on concrete arrays; traced ones pass it
    unchecked, and the library's own indexing read them: JAX wrapped label -1 round to
    the last class (a finite, wrong loss and gradient) and filled label ``C`` with NaN
    in the loss but not in its gradient, nor in a weighted mean (0). Their example
    weight is made NaN instead, so that the row's loss and gradient (and a reduction
    over it) are NaN, as for any other NaN input under a transformation (issue 13).
    """
    if not cannot_copy_to_host(labels) or size(labels) == 0:
        return None
    bad = outside_classes(labels, classes, xp=xp)
    return bad if active is None else bad & active


def _ones(shape: tuple[int, ...], dtype: Any, *, like: Array, xp: ModuleType) -> Array:
    """``xp.ones`` on ``like``'s device; for NumPy, a shared read-only array (issue 13).

    The example weights of an unweighted batch are only ever read (every change makes
    a new array), so small ones are made once per shape and dtype and marked read-only,
    which turns any write into an error rather than a silent change of later calls.
    """
    if type(like) is np.ndarray:
        key = (shape, dtype)
        try:
            return _SHARED_ONES[key]
        except KeyError:
            ones = np.ones(shape, dtype=dtype)
        if ones.size <= 1024 and len(_SHARED_ONES) < 256:
            ones.flags.writeable = False
            _SHARED_ONES[key] = ones
        return ones
    return xp.ones(shape, dtype=dtype, device=device(like))


_SHARED_ONES: dict[tuple[tuple[int, ...], Any], np.ndarray] = {}
"""Read-only NumPy ones by shape and dtype (see :func:`_ones`)."""


def zero_where_ignored(values: Array, active: Array | None, *, xp: ModuleType) -> Array:
    """``values`` with the ignored rows set to 0 (``active`` of the batch shape, or None).

    ``values`` has the batch shape, or one more (trailing) axis.
    """
    if active is None:
        return values
    mask = active if values.ndim == active.ndim else active[..., None]
    return where_zero(mask, values, xp=xp)


@dataclass
class Batch:
    """The layout, example weights and reduction of one call (class axis last inside)."""

    xp: ModuleType
    dtype: Any  # the compute dtype
    axis: int  # the caller's class axis, normalised
    example_weight: Array  # omega_i, keepdims; 0 on ignored rows
    active: Array | None  # the rows that count (None: all of them)
    reduction: str
    log_base: float | None
    unweighted: bool = False  # every example weight is 1

    def weighs_one(self, values: Array) -> bool:
        r"""Whether :math:`\omega \odot` ``values`` is ``values`` bit for bit: every
        :math:`\omega_i` is 1 and the product would neither promote nor broadcast the NumPy
        ``values`` (of the batch shape plus a trailing axis; issue 13: a product saved)."""
        return (
            self.unweighted
            and type(values) is np.ndarray
            and values.dtype == self.dtype
            and values.ndim == self.example_weight.ndim
        )

    def weigh(self, values: Array) -> Array:
        r""":math:`\omega \odot` ``values`` (a plain product: keepdims example weights)."""
        return values if self.weighs_one(values) else self.example_weight * values

    def normalizer(self) -> Array:
        r""":math:`\sum_i \omega_i`: what ``'mean'`` divides by."""
        if self.unweighted and type(self.example_weight) is np.ndarray:
            # The number of rows, as the float64 sum of ones gives it (issue 13).
            return np.dtype(self.dtype).type(self.example_weight.size)
        return reduce_sum(
            reshape(self.example_weight, (-1,), xp=self.xp), xp=self.xp, out_dtype=self.dtype
        )

    def reduce(self, loss: Array) -> Any:
        """Reduce per-row losses (batch shape) as the options say; ignored rows count 0."""
        if self.reduction == "mean" and not self.unweighted and _float32_numpy(loss, self.dtype):
            return self._weighted_mean(loss)
        return reduce_loss(
            zero_where_ignored(loss, self.active, xp=self.xp),
            self.normalizer(),
            reduction=self.reduction,
            xp=self.xp,
            log_base=self.log_base,
            dtype=self.dtype,
        )

    def _weighted_mean(self, loss: np.ndarray) -> Any:
        r"""The ``'mean'`` of float32 NumPy rows under example weights (issue 13): the
        total and :math:`\sum_i \omega_i` in float64 and one rounding of their quotient,
        not the quotient of the two rounded to float32 (1.3 float32 ulps off, where torch
        eager's float32 mean was 0.3, on 32000 weighted classes)."""
        kept = zero_where_ignored(loss, self.active, xp=self.xp)
        total = np.add.reduce(np.reshape(kept, (-1,)), dtype=np.float64)
        weight = np.add.reduce(np.reshape(self.example_weight, (-1,)), dtype=np.float64)
        mean = total / weight if weight > 0 else weight * 0.0
        if self.log_base is not None:
            mean = mean / self.log_base
        return np.float32(mean + 0.0)

    def gradient_scale(self, upstream: object = None) -> Any:
        """The factor of the per-row gradients: the reduction's scale times ``upstream``.

        ``upstream`` is None (1), a scalar, or (for ``reduction='none'``) an array of
        the batch shape: the gradient is then that of :math:`\\sum_i u_i L_i`. The
        result is a scalar or an array of the batch shape plus a trailing axis.
        """
        scale = scale_for_reduction(
            self.normalizer(), reduction=self.reduction, xp=self.xp, log_base=self.log_base
        )
        if upstream is None:
            return scale
        xp = self.xp
        u = xp.asarray(upstream, dtype=self.dtype, device=device(self.example_weight))
        if u.ndim:
            u = xp.reshape(u, tuple(self.example_weight.shape))
        return u * scale

    def finish_gradient(self, grad: Array, upstream: object = None) -> Array:
        """From per-row ``d loss_i / d logits`` (classes last) to the caller's gradient."""
        xp = self.xp
        scale = self.gradient_scale(upstream)
        if not _unit_scale(scale, grad):
            grad = grad * scale
        grad = zero_where_ignored(grad, self.active, xp=xp)
        return xp.moveaxis(grad, -1, self.axis) if self.axis != grad.ndim - 1 else grad


def _float32_numpy(values: Array, dtype: Any) -> bool:
    """Whether ``values`` is a NumPy array of a batch that computes in float32."""
    return type(values) is np.ndarray and dtype == np.float32


def _unit_scale(scale: object, grad: Array) -> bool:
    """Whether ``grad * scale`` would be ``grad`` itself, bit for bit and in its dtype: a
    NumPy ``grad`` (the bodies' own temporary) and a scale of exactly 1 that does not
    promote it (issue 13: the 'sum' and one-row 'mean' gradients skip a multiplication)."""
    return (
        type(grad) is np.ndarray
        and (type(scale) is float or (isinstance(scale, np.generic) and scale.dtype == grad.dtype))
        and scale == 1.0
    )


def batch_for(
    values: Array,
    axis: int,
    dtype: Any,
    options: LossOptions,
    *,
    xp: ModuleType,
    example_weight: Array | None = None,
    active: Array | None = None,
) -> Batch:
    """A :class:`Batch` for prepared ``values``; ``example_weight`` None: 1 per active row.

    With neither (every example weighs 1) the normaliser is the number of rows. Pass
    None rather than an array of ones, so that the batch knows it.
    """
    unweighted = example_weight is None and active is None
    if example_weight is None:
        ones = _ones((*values.shape[:-1], 1), dtype, like=values, xp=xp)
        example_weight = zero_where_ignored(ones, active, xp=xp)
    return Batch(
        xp,
        dtype,
        axis,
        example_weight,
        active,
        options.reduction,
        options.log_base_in(dtype),
        unweighted=unweighted,
    )


@dataclass(slots=True)
class LossKeywords:
    """The keyword group of the losses of logits, declared once, as a call gave it.

    Nothing is checked here: a loss checks each keyword where it uses it (``options()``
    those of :class:`LossOptions`; :func:`label_batch` the axis, the class weights and
    the labels). The fields are in the order of the public signatures, which take them
    through :func:`keywords_from`: the softmax losses every one (the targets' but
    ``ignore_index``), :func:`labelled_batch` and the families that extend it all but
    :data:`SOFTMAX_OPTIONS`. One is built per call and not changed.
    """

    axis: int = -1
    weight: object = None
    ignore_index: int | None = None
    label_smoothing: float = 0.0
    reduction: str = "mean"
    temperature: float = 1.0
    z_loss: float = 0.0
    soft_cap: float | None = None
    base: float | None = None
    validate: bool = True

    def options(self) -> LossOptions:
        """The checked :class:`LossOptions` of these keywords (:func:`options_of`)."""
        return options_of(
            self.label_smoothing,
            self.temperature,
            self.z_loss,
            self.soft_cap,
            self.base,
            self.reduction,
        )


SOFTMAX_OPTIONS = ("label_smoothing", "temperature", "z_loss", "soft_cap")
"""The fields of :class:`LossKeywords` that only the softmax losses take."""


@dataclass
class LabelBatch:
    """Logits (classes last, compute dtype) with their checked integer labels and batch."""

    values: Array
    labels: Labels
    batch: Batch
    logits: Array  # the caller's array


def label_batch(
    logits: Array,
    labels: Array,
    options: LossOptions,
    given: LossKeywords,
    *,
    xp: ModuleType,
    validate_logits: bool | None = None,
    check_range: bool = True,
) -> LabelBatch:
    """Check logits and integer labels of one namespace ``xp``; weigh each row by ``w_y``.

    ``given``: the call's ``axis``, ``weight``, ``ignore_index`` and ``validate``;
    ``options``: its checked options. ``validate_logits`` (default ``validate``) lets a
    caller that checks the logits another way (the fused kernels) skip the full pass
    over them; ``check_range`` False (:func:`prepare_labels`) the pass over the labels,
    for a caller whose labels were checked already (``crossent.torch``'s backward).
    """
    validate = check_flag(given.validate)
    check = validate if validate_logits is None else validate_logits
    # With ignore_index, an ignored row's logits are never read: checked with the others
    # first, and only where that fails again without them (issue 13).
    ignoring = check and given.ignore_index is not None
    values, normalised_axis, dtype = prepare_logits(
        logits, given.axis, xp=xp, validate=check and not ignoring
    )
    suspect = ignoring and not _logits_pass(values, xp=xp, axis=normalised_axis)
    lab = prepare_labels(
        labels,
        logits=logits,
        values=values,
        dtype=dtype,
        weight=given.weight,
        ignore_index=given.ignore_index,
        validate=validate,
        xp=xp,
        check_range=check_range,
    )
    if suspect:
        values = _counted_logits(values, lab.active, xp=xp, axis=normalised_axis)
    batch = batch_for(
        values,
        normalised_axis,
        dtype,
        options,
        xp=xp,
        example_weight=None if lab.unweighted else lab.row_weight,
        active=lab.active,
    )
    return LabelBatch(values=values, labels=lab, batch=batch, logits=logits)


def _logits_pass(values: Array, *, xp: ModuleType, axis: int) -> bool:
    """Whether the logits ``values`` (classes last) pass :func:`check_logits`."""
    try:
        check_logits(values, name="logits", xp=xp, axis=axis)
    except InputError:
        return False
    return True


def _counted_logits(values: Array, active: Array | None, *, xp: ModuleType, axis: int) -> Array:
    """``values`` (classes last) checked on the rows that count (an error names the entry
    in the caller's layout, ``axis`` its class axis), with the ignored rows' logits
    replaced by 0 (a copy): nothing downstream reads them, and a NaN or an infinity
    there would make NumPy warn (``inf - inf``) or a gradient row NaN (issue 13)."""
    check_logits_of_rows(values, active, name="logits", xp=xp, axis=axis)
    if active is None:  # (every row counts: the check above raised)
        return values
    return xp.where(active[..., None], values, xp.zeros_like(values))


_Shared = TypeVar("_Shared")
_Problem = TypeVar("_Problem")
_Result = TypeVar("_Result")


def keywords_from(
    group: Callable[..., Any], *, hide: tuple[str, ...] = ()
) -> Callable[[Callable[..., _Problem]], Callable[..., _Problem]]:
    """Make ``own(*arrays, given, /, **options)`` take ``group``'s fields as keywords.

    ``@keywords_from(LossKeywords)`` on
    ``def own(logits, labels, given: LossKeywords, /, *, fused=True) -> P`` gives a
    function whose signature is ``own``'s arrays, then ``group``'s fields (keyword-only,
    in ``group``'s order, less ``hide``), then ``own``'s keyword-only parameters; a call
    is ``own(*arrays, group(**group_keywords), **own_keywords)``. The keyword group is
    so declared once (in ``group``), and each function that takes it declares only its
    arrays and its own keywords.

    Unlike :func:`extends`, no shared step runs before ``own``: ``own`` decides what is
    checked when (the fused softmax path leaves the logits to its kernel).
    ``hide``: fields ``own`` does not take; they keep their defaults. A call that does
    not fit the signature raises the ``TypeError`` Python would, naming ``own``.
    """
    fields = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for p in inspect.signature(group).parameters.values()
        if p.name not in hide
    ]
    names = frozenset(p.name for p in fields)

    def decorate(own: Callable[..., _Problem]) -> Callable[..., _Problem]:
        signature = inspect.signature(own)
        values = list(signature.parameters.values())
        arrays = [p for p in values if p.kind is inspect.Parameter.POSITIONAL_ONLY][:-1]
        options = [p for p in values if p.kind is inspect.Parameter.KEYWORD_ONLY]
        mine = frozenset(p.name for p in options)
        known = names | mine
        count = len(arrays)

        def prepare(*args: Any, **kwargs: Any) -> _Problem:
            if len(args) == count:
                if names.issuperset(kwargs):
                    return own(*args, group(**kwargs))
                if known.issuperset(kwargs):
                    given = {k: kwargs.pop(k) for k in mine & kwargs.keys()}
                    return own(*args, group(**kwargs), **given)
            raise TypeError(_misfit(own.__name__, [p.name for p in arrays], args, kwargs, known))

        functools.update_wrapper(prepare, own)
        parameters = [*arrays, *fields, *options]
        prepare.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=parameters
        )
        prepare.__annotations__ = {
            **{p.name: p.annotation for p in parameters},
            "return": signature.return_annotation,
        }
        return prepare

    return decorate


def _misfit(
    name: str,
    arrays: list[str],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    known: frozenset[str],
) -> str:
    """Python's message for a call of ``name(*arrays, /, *, **known)`` that does not fit."""
    by_keyword = [k for k in kwargs if k in arrays]
    if by_keyword:
        return (
            f"{name}() got some positional-only arguments passed as keyword arguments: "
            f"'{', '.join(by_keyword)}'"
        )
    for keyword in kwargs:
        if keyword not in known:
            return f"{name}() got an unexpected keyword argument '{keyword}'"
    if len(args) > len(arrays):
        given = f"{len(args)}"
        if kwargs:
            given += f" positional argument{_s(len(args))} (and {len(kwargs)} keyword-only "
            given += f"argument{_s(len(kwargs))})"
        return (
            f"{name}() takes {len(arrays)} positional argument{_s(len(arrays))} "
            f"but {given} were given"
        )
    missing = [f"'{a}'" for a in arrays[len(args) :]]
    listed = missing[0] if len(missing) == 1 else f"{', '.join(missing[:-1])} and {missing[-1]}"
    if len(missing) > 2:
        listed = f"{', '.join(missing[:-1])}, and {missing[-1]}"
    count = len(missing)
    return f"{name}() missing {count} required positional argument{_s(count)}: {listed}"


def _s(count: int) -> str:
    return "" if count == 1 else "s"


@keywords_from(LossKeywords, hide=SOFTMAX_OPTIONS)
def labelled_batch(logits: object, labels: object, given: LossKeywords, /) -> LabelBatch:
    """Check logits with integer labels as the public losses take them (one namespace).

    The prepare step the losses of integer labels share, with the keyword group of
    :class:`LossKeywords` but the softmax options; a family adds its own options with
    :func:`extends` (and hides those it does not take).
    """
    xp, (z, y) = namespace(logits, labels, names=("logits", "labels"))
    return label_batch(z, y, given.options(), given, xp=xp)


def extends(
    shared: Callable[..., _Shared], *, hide: tuple[str, ...] = ()
) -> Callable[[Callable[..., _Problem]], Callable[..., _Problem]]:
    """Make ``own(given, /, **options)`` a prepare step that takes ``shared``'s arguments too.

    ``@extends(shared)`` on ``def own(given, /, *, gamma=2.0) -> P`` gives a function
    whose signature is ``shared``'s positional parameters, then ``own``'s keyword-only
    ones, then ``shared``'s keyword-only ones; a call is
    ``own(shared(*arrays, **shared_keywords), **own_keywords)``. A loss family so
    declares only its own options, and the group it shares with the others (the
    labelled batch's ``axis, weight, ignore_index, ...``) is written once, in ``shared``.

    ``hide``: keywords of ``shared`` the family does not take; they keep their defaults.
    Any keyword that is not in the signature is a ``TypeError`` naming ``own``.
    ``shared`` runs first, so its errors come before those of ``own``'s options.
    """
    parameters = list(inspect.signature(shared).parameters.values())
    arrays = [p for p in parameters if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    common = [
        p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in hide
    ]

    def decorate(own: Callable[..., _Problem]) -> Callable[..., _Problem]:
        signature = inspect.signature(own)
        options = [
            p for p in signature.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        mine = tuple(p.name for p in options)
        known = frozenset(mine).union(p.name for p in common)

        def prepare(*args: Any, **kwargs: Any) -> _Problem:
            if not known.issuperset(kwargs):
                name = min(kwargs.keys() - known)
                raise TypeError(f"{own.__name__}() got an unexpected keyword argument {name!r}")
            given = {k: kwargs.pop(k) for k in mine if k in kwargs}
            return own(shared(*args, **kwargs), **given)

        functools.update_wrapper(prepare, own)
        prepare.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*arrays, *options, *common]
        )
        return prepare

    return decorate


class FrontDoor(NamedTuple):
    """How an outer wrapper of a public loss (``_weight_scale.weight_scaled``,
    ``_far_gaps.far_rows_guard``) calls its lean path itself (issue 13: each wrapper
    between the caller and the lean path, its ``*args, **kwargs`` passed on, costs a
    few tenths of a microsecond of a small call).

    ``result = shortcut(args, kwargs)`` first (:func:`prepared_by`'s ``shortcut``);
    where it is None, ``past(*args, **kwargs)``: the function without it (the rest of
    the call as the function makes it, its later tries and full path, its wrappers'
    checks); else ``settle(result, args, kwargs)`` (the wrapper's checks of a result,
    as it makes them), or ``result`` itself where ``settle`` is None. The same
    result, bit for bit and error for error, as calling the function.
    """

    shortcut: Callable[[tuple[Any, ...], dict[str, Any]], Any]
    settle: Callable[[Any, tuple[Any, ...], dict[str, Any]], Any] | None
    past: Callable[..., Any]


def prepared_by(
    prepare: Callable[..., _Problem],
    *,
    twin: Callable[..., object] | None = None,
    hide: tuple[str, ...] = (),
    shortcut: Callable[[tuple[Any, ...], dict[str, Any]], Any] | None = None,
    fused: Callable[[tuple[Any, ...], dict[str, Any]], Any] | None = None,
    widen: Callable[[tuple[Any, ...], dict[str, Any]], Any] | None = None,
) -> Callable[[Callable[..., _Result]], Callable[..., _Result]]:
    """Make ``body(problem)`` a public function that takes ``prepare``'s arguments.

    ``@prepared_by(prepare)`` on ``def loss(problem) -> R`` gives a function with the
    signature of ``prepare`` (for :func:`inspect.signature` and the docs) and the return
    annotation, name, module and docstring of ``body``; a call is
    ``body(prepare(*args, **kwargs))``, one extra frame and nothing else. A loss and
    its gradient twin are two such bodies over one prepare step, which holds the public
    signature and every check, so neither is written twice.

    ``body``'s own keyword-only parameters after ``problem`` (a gradient's ``out=``)
    end the public signature and go to ``body``, not to ``prepare``. ``hide``: keywords
    of ``prepare`` the public function does not take (an entry point's ``fused=``);
    they keep their defaults, and passing one is a ``TypeError``.

    ``twin``: the function whose arguments these are (the loss, for its gradient); the
    docstring then gets, before its Returns section, the Parameters section that says
    so: every argument, "As in :func:`twin`". ``%(key)s`` fragments are filled in
    (``_docs.py``).

    ``shortcut(args, kwargs)``: tried first with the call's arguments as given; its
    result, unless None, is the call's (issue 13: a lean path for small inputs, which
    must give what ``body(prepare(...))`` gives, and returns None for anything else).

    With a ``shortcut``, the function's ``_front_door`` is a :class:`FrontDoor`
    (``past`` the function without the shortcut), for its outer wrappers.

    ``fused(args, kwargs)``: tried next, as ``shortcut`` (issue 13 follow-up: fused
    kernels for large inputs, which must give what ``body(prepare(...))`` gives within
    float64 rounding; a call that does not pay for a shortcut does not pass it).

    ``widen(args, kwargs)``: a :class:`._widen.Widened` call to make instead (the
    public function called again on other arrays by ``Widened.run``, its result
    finished by ``Widened.finish``; or on blocks of rows), or None; tried after
    ``shortcut``, which takes such logits only as they are (issue 13: NumPy
    float16/float32 logits off the fused path, ``_widen.py``).
    """
    signature = inspect.signature(prepare)
    shown = [p for name, p in signature.parameters.items() if name not in hide]
    hidden = frozenset(hide)

    def decorate(body: Callable[..., _Result]) -> Callable[..., _Result]:
        extras = [
            p
            for p in inspect.signature(body).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        own = frozenset(p.name for p in extras)

        def widened(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            assert widen is not None
            call = widen(args, kwargs)
            return None if call is None else call.run(public)

        # Small CPU tensors: the NumPy call of the function as exported (its outer
        # wrappers included), its results as tensors (``_torch_host``). After the
        # shortcut (NumPy arrays only), so that the NumPy calls it takes pay nothing.
        hosted = on_host(lambda *a, **k: exported(body, public)(*a, **k))

        def on_host_route(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if args and type(args[0]) is not np.ndarray:
                return hosted(args, kwargs)
            return None

        steps = (shortcut, on_host_route, fused, widened if widen else None)
        tries = tuple(t for t in steps if t is not None)
        later = tries[1:] if shortcut is not None else tries

        def public(*args: Any, **kwargs: Any) -> _Result:
            for attempt in tries:
                result = attempt(args, kwargs)
                if result is not None:
                    return result
            return full(args, kwargs)

        def past_shortcut(*args: Any, **kwargs: Any) -> _Result:
            for attempt in later:
                result = attempt(args, kwargs)
                if result is not None:
                    return result
            return full(args, kwargs)

        def full(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Result:
            if hidden and not hidden.isdisjoint(kwargs):
                name = min(hidden & kwargs.keys())
                raise TypeError(f"{body.__name__}() got an unexpected keyword argument {name!r}")
            if own and not own.isdisjoint(kwargs):
                mine = {k: kwargs.pop(k) for k in own & kwargs.keys()}
                return body(prepare(*args, **kwargs), **mine)
            return body(prepare(*args, **kwargs))

        functools.update_wrapper(public, body)
        returns = body.__annotations__["return"]
        parameters = [*shown, *extras]
        public.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=parameters, return_annotation=returns
        )
        public.__annotations__ = {
            **{p.name: p.annotation for p in parameters},
            "return": returns,
        }
        names = [p.name for p in shown]
        public.__doc__ = render(body.__doc__ or "", parameters=names, twin=twin)
        if shortcut is not None:
            public._front_door = FrontDoor(shortcut, None, past_shortcut)  # type: ignore[attr-defined]
        return public

    return decorate
