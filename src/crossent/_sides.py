"""One side of a measure: a distribution given as probabilities, log-probabilities or logits.

Shared by ``info/`` (the measures), ``losses/`` (targets, distillation) and
``calibration/`` (validating predictions), so none of them imports another package's
private module.

The caller names the form (``p_form=``, ``q_form=``); nothing here infers it.
:func:`prepare` moves the class axis last, casts to the compute dtype, validates
according to the form, and offers the distribution as probabilities or
log-probabilities, converting lazily and at most once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from ._checks import (
    Form,
    check_axis,
    check_classes,
    check_distribution,
    check_flag,
    check_log_distribution,
    check_logits,
    check_same_classes,
    row_sum_tolerance,
)
from ._numerics import safe_log
from ._xp import Array, astype, compute_dtype, log_softmax, logsumexp

__all__ = ["PendingCheck", "Side", "prepare", "prepare_one", "prepare_pair", "ready"]


@dataclass
class Side:
    """A validated distribution with its class axis last."""

    values: Array
    form: Form
    xp: ModuleType
    _cache: dict[str, Array] = field(default_factory=dict)

    def probs(self) -> Array:
        """The probabilities (``exp`` of the log-probabilities unless given directly)."""
        if self.form == "probs":
            return self.values
        if "probs" not in self._cache:
            self._cache["probs"] = self.xp.exp(self.log_probs())
        return self._cache["probs"]

    def log_probs(self) -> Array:
        """The log-probabilities (``-inf`` for probability 0)."""
        if self.form == "log_probs":
            return self.values
        if "log_probs" not in self._cache:
            if self.form == "logits":
                self._cache["log_probs"] = log_softmax(self.values, xp=self.xp)
            else:
                self._cache["log_probs"] = safe_log(self.values, xp=self.xp)
        return self._cache["log_probs"]


class PendingCheck(NamedTuple):
    """The validation of a prepared side, deferred (``pending=`` of :func:`prepare`) so
    that a fused kernel can screen the values in its own pass and :meth:`run` it only
    for a suspect row, to raise the message the eager validation raises."""

    side: Side
    name: str
    axis: int
    storage_dtype: Any

    def run(self) -> None:
        """Validate the side now (raises :class:`~crossent.errors.InputError`)."""
        _validate(self.side, name=self.name, axis=self.axis, storage_dtype=self.storage_dtype)

    def row_sum_tolerance(self) -> float:
        """How far from 1 a row may sum (:func:`~crossent._checks.row_sum_tolerance`)."""
        classes = self.side.values.shape[-1]
        return row_sum_tolerance(self.storage_dtype, classes, xp=self.side.xp)


def prepare(
    x: Array,
    *,
    name: str,
    form: Form,
    axis: int,
    xp: ModuleType,
    dtype: Any,
    validate: bool,
    pending: list[PendingCheck] | None = None,
) -> Side:
    """Move the class axis of ``x`` last, cast it to ``dtype`` and validate it as ``form``.

    ``axis`` must already be normalised (non-negative). With ``pending``, the validation
    is appended to it as a :class:`PendingCheck` instead of run.
    """
    check_classes(x.shape[axis], name=name, axis=axis)
    values = xp.moveaxis(x, axis, -1) if axis != x.ndim - 1 else x
    values = astype(values, dtype, xp=xp) if values.dtype != dtype else values
    side = Side(values, form, xp)
    if validate:
        _validate_or_defer(side, name=name, axis=axis, storage_dtype=x.dtype, pending=pending)
    return side


def _validate_or_defer(
    side: Side, *, name: str, axis: int, storage_dtype: Any, pending: list[PendingCheck] | None
) -> None:
    if pending is None:
        _validate(side, name=name, axis=axis, storage_dtype=storage_dtype)
    else:
        pending.append(PendingCheck(side, name, axis, storage_dtype))


def prepare_one(
    x: Array,
    *,
    name: str,
    form: Form,
    axis: int,
    xp: ModuleType,
    validate: bool,
    pending: list[PendingCheck] | None = None,
) -> tuple[Side, Any]:
    """Prepare one distribution (``axis`` as the caller gave it); returns it and the
    compute dtype. ``pending`` as in :func:`prepare`."""
    validate = check_flag(validate)
    if _ready(x, axis=axis):
        side = Side(x, form, xp)
        if validate:
            _validate_or_defer(
                side, name=name, axis=x.ndim - 1, storage_dtype=x.dtype, pending=pending
            )
        return side, x.dtype
    normalised_axis = check_axis(axis, x.ndim, name=name)
    dtype = compute_dtype(x, xp=xp, names=(name,))
    side = prepare(
        x,
        name=name,
        form=form,
        axis=normalised_axis,
        xp=xp,
        dtype=dtype,
        validate=validate,
        pending=pending,
    )
    return side, dtype


def prepare_pair(
    p: Array,
    q: Array,
    *,
    names: tuple[str, str],
    forms: tuple[Form, Form],
    axis: int,
    xp: ModuleType,
    validate: bool,
    pending: list[PendingCheck] | None = None,
) -> tuple[Side, Side, Any]:
    """Prepare two distributions over the same classes; returns both and the compute
    dtype. ``pending`` as in :func:`prepare` (``p``'s check first)."""
    validate = check_flag(validate)
    if _ready(p, axis=axis) and type(q) is np.ndarray and q.shape == p.shape and q.dtype == p.dtype:
        side_p, side_q = Side(p, forms[0], xp), Side(q, forms[1], xp)
        if validate and pending is not None:  # the commonest call of the measures
            last = p.ndim - 1
            pending += (
                PendingCheck(side_p, names[0], last, p.dtype),
                PendingCheck(side_q, names[1], last, q.dtype),
            )
        elif validate:
            _validate(side_p, name=names[0], axis=p.ndim - 1, storage_dtype=p.dtype)
            _validate(side_q, name=names[1], axis=q.ndim - 1, storage_dtype=q.dtype)
        return side_p, side_q, p.dtype
    if p.ndim == 0 or q.ndim == 0:
        check_axis(axis, min(p.ndim, q.ndim), name=names[0] if p.ndim == 0 else names[1])
    axis_p = check_axis(axis, p.ndim, name=names[0])
    axis_q = check_axis(axis, q.ndim, name=names[1])
    check_same_classes(
        _class_last(p.shape, axis_p), _class_last(q.shape, axis_q), names=names, axis=axis
    )
    dtype = compute_dtype(p, q, xp=xp, names=names)
    side_p, side_q = (
        prepare(x, name=n, form=f, axis=a, xp=xp, dtype=dtype, validate=validate, pending=pending)
        for x, n, f, a in ((p, names[0], forms[0], axis_p), (q, names[1], forms[1], axis_q))
    )
    return side_p, side_q, dtype


_READY_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _ready(x: Array, *, axis: int) -> bool:
    """Whether ``x`` is a NumPy array that :func:`prepare` would take as it is (issue 13:
    per-call overhead): float32 or float64 (the compute dtype itself), classes along its
    last axis, at least one of them. Every check of the long way holds for it."""
    return (
        type(x) is np.ndarray
        and type(axis) is int
        and (axis == -1 or axis == x.ndim - 1)
        and x.ndim > 0
        and x.shape[-1] > 0
        and x.dtype in _READY_DTYPES
    )


ready = _ready
"""Whether a NumPy array is ready as it is (:func:`_ready`), for the losses' own prepare
step (issue 13); this module's shortcuts call ``_ready``, which the tests patch."""


def _validate(side: Side, *, name: str, axis: int, storage_dtype: Any) -> None:
    """Validate the values of ``side`` as its form (``axis``: the caller's class axis)."""
    values, xp = side.values, side.xp
    if side.form == "probs":
        check_distribution(values, name=name, xp=xp, axis=axis, storage_dtype=storage_dtype)
    elif side.form == "log_probs":
        check_log_distribution(
            values,
            name=name,
            xp=xp,
            axis=axis,
            lse=logsumexp(values, xp=xp),
            storage_dtype=storage_dtype,
        )
    else:
        check_logits(values, name=name, xp=xp, axis=axis)


def _class_last(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    if axis == len(shape) - 1:
        return tuple(shape)
    dims = list(shape)
    dims.append(dims.pop(axis))
    return tuple(dims)
