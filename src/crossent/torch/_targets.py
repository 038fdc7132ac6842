r"""Probability targets as the NumPy API checks them: finite, in [0, 1], rows summing to 1.

The rules and the tolerance are :func:`crossent._checks.check_distribution`'s (a row
sum :math:`S_i` may differ from 1 by :func:`crossent._checks.row_sum_tolerance` of the
targets' own dtype and the number of classes), applied to each row of ``(rows,
classes)`` targets in three reductions, per row, of the extremes and the float64 sum,

.. math::

    \mathrm{bad}_i = \neg\big(\min_c t_{ic} \ge 0 \;\wedge\; \max_c t_{ic} \le 1
        \;\wedge\; |S_i - 1| \le \tau\big),

false for a NaN (every comparison with NaN is false) and for an infinity (the sum is not
finite). :func:`row_stats` reduces each row into preallocated rows (a block of rows at a
time inside ``crossent::softmax_ce_probs_v3``' forward, on data in host memory, so the
check runs under ``torch.compile(fullgraph=True)`` too) and :func:`flags` forms the
flags once; :func:`raise_bad_row` reads them once and,
only for a flagged batch, writes the :class:`InputError` naming the argument, the row in
the caller's layout and the value. :func:`check_targets_eagerly` is the same check of
whole tensors for the generic path (off the CPU, targets that require grad,
``torch.func``), eagerly only, as ``_labels.check_class_ids_off_cpu``.
"""

from __future__ import annotations

import math

import torch

from .._checks import _tolerance
from ..errors import InputError
from ._arguments import examples

__all__ = [
    "bad_rows",
    "check_logits_eagerly",
    "check_targets_eagerly",
    "flags",
    "raise_bad_logits",
    "raise_bad_row",
    "row_stats",
    "tolerance",
]


def tolerance(dtype: torch.dtype, classes: int) -> float:
    """:func:`crossent._checks.row_sum_tolerance` of targets stored in ``dtype``."""
    return _tolerance(torch.finfo(dtype), classes)


def row_stats(t: torch.Tensor, *, out: torch.Tensor) -> None:
    """Each row's minimum, maximum and sum (``t``: rows x classes, float64 or the widest
    type the device has) into ``out`` (3 x rows, of ``t``'s dtype; NaN propagates)."""
    if t.shape[-1] == 0:  # no class: no probability vector (the sum 0 fails)
        out.zero_()
        return
    # amin and amax apart: torch.aminmax over the last axis is ~7x slower on the CPU
    # (one thread, 1024 x 32000 float64: 73 ms against 11 ms each).
    torch.amin(t, -1, out=out[0])
    torch.amax(t, -1, out=out[1])
    torch.sum(t, -1, out=out[2])


def flags(stats: torch.Tensor, tol: float) -> torch.Tensor:
    """Per-row flags (bool) from :func:`row_stats`: rows that are no probability
    vector within ``tol`` (every comparison with NaN is false)."""
    lo, hi, total = stats[0], stats[1], stats[2]
    return ~((lo >= 0) & (hi <= 1) & ((total - 1).abs() <= tol))


def bad_rows(t: torch.Tensor, tol: float) -> torch.Tensor:
    """Per-row flags (bool, ``t.shape[0]``) of rows of ``t`` (rows x classes, float64 or
    the widest type the device has) that are no probability vector within ``tol``."""
    stats = torch.empty(3, t.shape[0], dtype=t.dtype, device=t.device)
    row_stats(t, out=stats)
    return flags(stats, tol)


def raise_bad_row(
    t: torch.Tensor,
    flags: torch.Tensor,
    *,
    batch_shape: tuple[int, ...] | None,
    storage_dtype: torch.dtype,
    name: str = "target",
) -> None:
    """Raise :class:`InputError` for the first flagged row of ``t`` (rows x classes, any
    floating dtype), naming it by its index in ``batch_shape`` (the caller's batch shape,
    class axis 1 removed; None: the flat row) and the offending value; return where no
    row is flagged (the one read of the flags)."""
    if not bool(flags.any()):
        return
    classes = t.shape[-1]
    flat = int(torch.argmax(flags.reshape(-1).to(torch.int8)))
    row = _caller_row(flat, t.shape[0], batch_shape)
    where = str(row[0]) if len(row) == 1 else str(row)
    values = t.reshape(-1, classes)[flat].to(torch.float64)

    def entry(mask: torch.Tensor) -> tuple[str, float]:
        c = int(torch.argmax(mask.to(torch.int8)))
        index = (row[0], c, *row[1:])
        return str(index), float(values[c])

    if bool(torch.isnan(values).any()):
        at, _ = entry(torch.isnan(values))
        raise InputError(f"`{name}` contains NaN at index {at} (row {where})")
    if bool(torch.isinf(values).any()):
        at, value = entry(torch.isinf(values))
        raise InputError(f"`{name}` must be finite; got {value} at index {at} (row {where})")
    if bool((values < 0).any()):
        at, value = entry(values < 0)
        raise InputError(
            f"`{name}` must be non-negative (probabilities); got {value!r} at index {at} "
            f"(row {where})"
        )
    if bool((values > 1).any()):
        at, value = entry(values > 1)
        raise InputError(
            f"`{name}` must be probabilities in [0, 1]; got {value!r} at index {at} (row {where})"
        )
    total = float(values.sum())
    tol = tolerance(storage_dtype, classes)
    raise InputError(
        f"`{name}` must sum to 1 along the class axis 1; row {where} sums to {total!r} "
        f"(|error| {abs(total - 1):.3g} > tolerance {tol:.3g} for {storage_dtype} with "
        f"{classes} classes). crossent never renormalises silently: normalise it first "
        f"({name} / {name}.sum(1, keepdim=True))"
    )


def _caller_row(flat: int, rows: int, batch_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """The flat row ``flat`` of ``rows`` as an index of ``batch_shape`` (the caller's
    batch shape, class axis 1 removed; None, or another size: the flat row)."""
    shape = tuple(batch_shape or ())
    if math.prod(shape) != rows:  # None, or a traced graph's batch at another size
        shape = (rows,)
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), shape))


def raise_bad_logits(
    z: torch.Tensor,
    dead: torch.Tensor,
    *,
    batch_shape: tuple[int, ...] | None,
    name: str = "input",
) -> None:
    """Raise :class:`InputError` for the first row of logits ``z`` (rows x classes)
    flagged in ``dead`` (its largest logit not finite), naming the entry in the
    caller's layout (``batch_shape`` as :func:`raise_bad_row`'s): a NaN, a ``+inf``, or
    a row entirely ``-inf`` (the NumPy API's rules, ``crossent._checks.check_logits``);
    return where no row is flagged (the one read of the flags)."""
    if not bool(dead.any()):
        return
    flat = int(torch.argmax(dead.to(torch.int8)))
    row = _caller_row(flat, z.shape[0], batch_shape)
    values = z[flat].to(torch.float64)
    for mask, what in ((torch.isnan(values), "contains NaN"), (values == math.inf, "+inf")):
        if bool(mask.any()):
            c = int(torch.argmax(mask.to(torch.int8)))
            at = (row[0], c, *row[1:])
            if what == "+inf":
                raise InputError(f"`{name}` (logits) must not be +inf; got +inf at index {at}")
            raise InputError(f"`{name}` contains NaN at index {at}")
    where = str(row[0]) if len(row) == 1 else str(row)
    raise InputError(f"`{name}` (logits) has row {where} entirely -inf, which is no distribution")


def _example_rows(x: torch.Tensor) -> torch.Tensor | None:
    """The values of ``x`` (classes on axis 1), every example's under ``torch.func``
    (their axes leading), with the classes last; None where there is no entry."""
    values, _ = examples(x.detach())
    axis = values.ndim - x.ndim + 1  # vmap's example axes lead
    rows = values.movedim(axis, -1)
    return rows if rows.numel() else None


def check_logits_eagerly(z: torch.Tensor, *, name: str = "input") -> None:
    """:func:`raise_bad_logits` for the generic path of probability targets (``z``: the
    caller's layout, classes on axis 1), in eager calls on the CPU only (as the class
    ids' logits: no device sync; not while Dynamo traces), on every example's values
    under ``torch.func`` (the row then names the example first)."""
    if torch.compiler.is_compiling() or z.device.type != "cpu":
        return
    rows = _example_rows(z)
    if rows is None:
        return
    flat = rows.reshape(-1, rows.shape[-1])
    dead = ~torch.isfinite(flat.amax(-1))
    raise_bad_logits(flat, dead, batch_shape=tuple(rows.shape[:-1]), name=name)


def check_targets_eagerly(target: torch.Tensor, *, name: str = "target") -> None:
    """The check of probability ``target`` (the caller's layout, classes on axis 1) for
    the generic path, in eager calls only (never while Dynamo traces: a data-dependent
    branch; off the CPU a device sync), not on meta tensors (no data). Under
    ``torch.func`` every example's values (``_arguments.examples``; the row then names
    the example first)."""
    if torch.compiler.is_compiling() or target.device.type == "meta":
        return
    rows = _example_rows(target)
    if rows is None:
        return
    wide = torch.float32 if rows.device.type == "mps" else torch.float64
    flat = rows.reshape(-1, rows.shape[-1])
    flags = bad_rows(flat.to(wide), tolerance(target.dtype, rows.shape[-1]))
    raise_bad_row(flat, flags, batch_shape=tuple(rows.shape[:-1]), storage_dtype=target.dtype)
