"""Integer targets as PyTorch users pass them: any integer dtype, ``ignore_index``, checks.

``F.cross_entropy`` wants int64 targets and fails inside its kernel on int32 (and
silently reads uint8 as a mask in places); here every integer dtype (int8 .. int64,
uint8 .. uint64) is read as class ids and converted to int64 once (N elements).
The value check names the argument, the row (in the caller's layout) and the value,
and, when a label is -100 with ``ignore_index=None``, suggests ``ignore_index=-100``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import InputError, InputTypeError

__all__ = [
    "as_class_ids",
    "check_class_ids",
    "check_class_ids_off_cpu",
    "check_ignore_index",
]

_INTEGER_DTYPES = frozenset(
    {torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8}
    | {getattr(torch, name) for name in ("uint16", "uint32", "uint64") if hasattr(torch, name)}
)


def check_ignore_index(ignore_index: object) -> int | None:
    """``ignore_index`` as an int, or None; a NumPy integer too (as ``F.cross_entropy``).

    Any other Python type (a float, a string, a bool) is an :class:`InputTypeError`, as
    in the NumPy API (``crossent._checks``), naming the argument and the value."""
    if ignore_index is None:
        return None
    if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(
        ignore_index, (int, np.integer)
    ):
        raise InputTypeError(f"`ignore_index` must be an integer or None; got {ignore_index!r}")
    value = int(ignore_index)
    if not -(2**63) <= value < 2**63:  # the ops' int64 (was a RuntimeError of their schema)
        raise InputError(f"`ignore_index` must fit in int64 (class ids are int64); got {value}")
    return value


def as_class_ids(target: torch.Tensor, *, name: str = "target") -> torch.Tensor:
    """``target`` as int64 class ids (a no-op for int64); other dtypes are type errors."""
    if target.dtype == torch.int64:
        return target
    if target.dtype not in _INTEGER_DTYPES:
        raise InputTypeError(
            f"`{name}` must hold integer class ids (int8 .. int64, uint8) or, for "
            f"`cross_entropy`, floating class probabilities; got dtype {target.dtype}"
        )
    return target.to(torch.int64)


def check_class_ids(
    labels: torch.Tensor,
    *,
    classes: int,
    ignore_index: int | None,
    name: str = "target",
    shape: tuple[int, ...] | None = None,
) -> None:
    """Raise :class:`InputError` unless every label is in ``[0, classes)`` or ``ignore_index``.

    ``labels`` (int64) may be the flattened batch; ``shape`` is the caller's batch
    shape, used to name the row. A data-dependent check: call it eagerly (or on CPU
    data inside an opaque custom op), never while Dynamo traces.
    """
    if labels.numel() == 0:
        return
    bad = (labels < 0) | (labels >= classes)
    if ignore_index is not None:
        bad &= labels != ignore_index
    if not bool(bad.any()):
        return
    position = int(torch.argmax(bad.reshape(-1).to(torch.int8)))
    value = int(labels.reshape(-1)[position])
    lo, hi = int(labels.min()), int(labels.max())
    if shape is None or math.prod(shape) != labels.numel():  # (a traced graph's batch)
        shape = tuple(labels.shape)
    index: tuple[int, ...] = tuple(
        int(i) for i in torch.unravel_index(torch.tensor(position), shape)
    )
    where = str(index[0]) if len(index) == 1 else str(index)
    allowed = f" or ignore_index={ignore_index}" if ignore_index is not None else ""
    message = (
        f"`{name}` must be class ids in [0, {classes}){allowed}; got values in [{lo}, {hi}] "
        f"(row {where} has {value})"
    )
    if ignore_index is None and value == -100:
        message += (
            "; -100 is PyTorch's padding label: pass ignore_index=-100 to leave those rows out"
        )
    raise InputError(message)


def check_class_ids_off_cpu(
    labels: torch.Tensor, *, classes: int, ignore_index: int | None
) -> None:
    """:func:`check_class_ids` for labels off the CPU, in eager calls only.

    On the CPU the custom ops check the labels themselves, on data already in host
    memory (also under ``torch.compile``); elsewhere the check costs a device sync, so
    it runs eagerly only, never while Dynamo traces, nor on meta tensors (no data: shape
    inference gets ``F.cross_entropy``'s shapes, not ``.item()``'s error).
    """
    if labels.device.type not in ("cpu", "meta") and not torch.compiler.is_compiling():
        check_class_ids(labels, classes=classes, ignore_index=ignore_index)
