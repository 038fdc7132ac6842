"""What every input format produces: a :class:`Dataset`, or a :class:`SourceError`.

The prediction matrix of a file is a read-only ``numpy.memmap`` (or an array), its form
(``probs``, ``logits`` or ``log_probs``) is always named by the caller or by the file,
never guessed from the values, and the labels are held in memory.
"""

from __future__ import annotations

import contextlib
import io
import math
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import crossent

__all__ = [
    "PREDICTION_ARRAYS",
    "Dataset",
    "ScratchError",
    "SourceError",
    "as_class_ids",
    "binary_column",
    "boolean_class_ids",
    "check_shape",
    "first_not_whole",
    "labels_name",
    "prediction_arrays",
    "scratch_failed",
    "scratch_file",
    "sequence_hint",
]

PREDICTION_ARRAYS = ("probs", "logits", "log_probs")


def prediction_arrays() -> tuple[str, ...]:
    """The names a prediction array may have in a file: its form."""
    return PREDICTION_ARRAYS


class SourceError(crossent.InputError):
    """A file that cannot be read as predictions and labels (the message names the file)."""


@dataclass
class Dataset:
    """Predictions ``(n, classes)`` in a named form, integer labels, and where they came from.

    ``what`` names the prediction matrix in messages: the ``.npz`` member's name, or
    "the predictions (logits)" for a table whose columns hold the classes; ``dtype_hint``
    is advice added to a failed normalisation check (a CSV read as float64).  A table
    also records the values of its ``--id-column`` (``ids``) and the columns it was read
    with (``columns``, the report's statement of them).
    """

    values: Any
    labels: Any
    form: str
    class_names: list[str]
    source: str
    builtin: bool = False
    what: str = ""
    dtype_hint: str = ""
    ids: Any = None
    columns: dict[str, Any] | None = None
    labels_source: str = ""
    """The file the labels were read from, when not ``source`` (``--labels``)."""
    form_named: bool = False
    """The file names the form itself (an ``.npz``, ``.safetensors`` or ``.pt`` dict's
    array name), not the form flags or their default."""
    bfloat16: bool = False
    """The predictions were stored as bfloat16 (``values`` holds them widened to float32,
    as NumPy has no bfloat16)."""
    _cleanup: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)

    @property
    def n(self) -> int:
        return int(self.labels.shape[0])

    @property
    def classes(self) -> int:
        return int(self.values.shape[1])

    def close(self) -> None:
        """Drop the memory maps' temporary files."""
        self._cleanup.close()


def labels_name(path: Any, names: list[str], kind: str = "array") -> str:
    """Which of a file's named arrays ``--labels`` reads: the one named ``labels``, else
    the file's only one; anything else is a :class:`SourceError` naming the file and
    its arrays (nothing is chosen by shape or dtype).  ``kind`` is what the file calls
    its arrays in the message ("array", "tensor")."""
    if "labels" in names:
        return "labels"
    if len(names) == 1:
        return names[0]
    if not names:
        raise SourceError(f"{path}: holds no {kind}s; --labels needs the class ids")
    shown = ", ".join(map(repr, sorted(names)))
    raise SourceError(
        f"{path}: holds {len(names)} {kind}s ({shown}) and none named 'labels'; --labels "
        f"reads the {kind} named 'labels', or a file's only {kind}"
    )


def sequence_hint(shape: tuple[int, ...], name: str) -> str:
    """What to do with a sequence model's predictions of ``shape`` (batch, positions,
    classes), said after a refusal of their shape ("" for any other shape): the rows are
    the positions, so the user flattens them (and drops the ignored ones) first; nothing
    here reshapes an array, which would guess what its axes are."""
    if len(shape) < 3:
        return ""
    return (
        f". A sequence model's outputs (batch, positions, classes)? Flatten them into rows "
        f"first: {name}.reshape(-1, {shape[-1]}) and labels.reshape(-1)"
    )


def binary_column(values: Any, name: str, source: str) -> Any:
    """A one-dimensional prediction array as the one-column matrix ``(n, 1)`` that
    :func:`crossent.report` reads as a binary problem: ``probs`` is :math:`P(y = 1)` and
    ``logits`` the log-odds of class 1.  A 1-D ``log_probs`` would be
    :math:`\\log P(y = 1)`, which the library does not take: a :class:`SourceError`
    naming the array and its shape says what to store instead."""
    if name == "log_probs":
        raise SourceError(
            f"{source}: a one-dimensional 'log_probs' (shape {tuple(values.shape)}) is not "
            "accepted; store P(label = 1) as 'probs' or the log-odds of class 1 as 'logits', "
            "or both classes' log-probabilities as a (rows, 2) 'log_probs'"
        )
    return values.reshape(-1, 1)


def as_class_ids(labels: Any, what: str) -> Any:
    """``labels`` as class ids: integers and booleans as they are (booleans become 0 and 1
    in :func:`boolean_class_ids`, once the number of classes is known); any other dtype a
    :class:`SourceError` beginning with ``what`` ("x.npz: 'labels'").
    The test is the dtype's kind, not ``np.issubdtype(dtype, np.integer)``, which holds
    for ``timedelta64`` too: such labels went on to the library's own refusal, in its
    terms ("`labels` must be integer class ids ... labels.astype(int)") and without the
    file's name."""
    if labels.dtype == np.bool_:
        return labels
    if labels.dtype.kind not in "iu":
        fix = ""
        if labels.dtype.kind in "fc":
            fix = (
                ": save them as integers, labels.astype(int) after checking they are whole "
                "numbers (float labels are refused, whole ones such as 2.0 too, as "
                "crossent.report refuses them)"
            )
        if labels.dtype.kind == "f" and labels.ndim == 1 and labels.size:
            row = first_not_whole(labels)
            fix = f" (row {row} is {float(labels[row])!r}){fix}"
        raise SourceError(
            f"{what} must be integers (class ids) or booleans; got dtype {labels.dtype}{fix}"
        )
    return labels


def first_not_whole(values: Any) -> int:
    """The position of the first of the floating-point labels ``values`` that is no whole
    number (``1.5``, NaN, an infinity), else 0: the row a refusal of float labels shows.
    Float labels were refused by their dtype alone ("got dtype float64"), naming neither
    a row nor a value, so ``[0., 2.5]`` and ``[0., nan]`` read as ``[0., 2.]``."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    bad = np.flatnonzero(~finite | (values != np.floor(np.where(finite, values, 0.0))))
    return int(bad[0]) if bad.size else 0


def boolean_class_ids(labels: Any, classes: int, where: str) -> Any:
    """Boolean ``labels`` as the class ids 0 (False) and 1 (True), with ``classes``
    prediction columns: two, or one (``P(label = 1)``); with any other number a
    :class:`SourceError` beginning with ``where``, as :func:`crossent.report` refuses
    them.  They were cast to 0 and 1 as they were read, before the columns were counted,
    so a 3-class file's booleans were reported as the classes 0 and 1 (NLL and accuracy
    of the wrong classes) where the library refuses the same arrays."""
    if classes > 2:
        raise SourceError(
            f"{where}: the labels are booleans, the classes 0 (False) and 1 (True) of a "
            f"binary problem, but the predictions have {classes} classes; if False and True "
            "are the classes 0 and 1, save the labels as integers (labels.astype(int))"
        )
    return labels.astype(np.int64)


def check_shape(shape: tuple[int, ...], itemsize: int, where: str) -> None:
    """Refuse a stored shape that no NumPy array can have: the product of its non-zero
    dimensions times the item size past the largest ``intp`` (NumPy's own bound, which
    it applies to empty arrays too, so ``(2**62, 0)`` holds no bytes and still cannot be
    made); a :class:`SourceError` that begins with ``where``."""
    if math.prod(d for d in shape if d) * max(itemsize, 1) > sys.maxsize:
        raise SourceError(
            f"{where} has shape {tuple(shape)}, too large for any array; the file is damaged"
        )


class ScratchError(OSError):
    """A scratch file could not be written (its folder, TMPDIR, is full or read-only):
    said as such, not as the input's "cannot be read (No space left on device)"."""


class _Scratch(io.BufferedRandom):
    """A scratch file whose failed writes are :class:`ScratchError`, naming its folder."""

    def write(self, data: Any) -> int:
        try:
            return super().write(data)
        except OSError as exc:
            raise ScratchError(exc.errno, exc.strerror, tempfile.gettempdir()) from exc

    def flush(self) -> None:
        try:
            super().flush()
        except OSError as exc:
            raise ScratchError(exc.errno, exc.strerror, tempfile.gettempdir()) from exc


def scratch_file() -> Any:
    """An anonymous temporary file in TMPDIR for unpacked, copied or converted predictions.

    It has no name (POSIX unlinks it at once), so nothing is left behind however the run
    ends, SIGKILL included; a memory map of it keeps the data alive until it is dropped.
    A failed write is a :class:`ScratchError`.
    """
    return _Scratch(tempfile.TemporaryFile(prefix="crossent-", buffering=0))


def scratch_failed(source: object, exc: ScratchError) -> SourceError:
    """The one-line error for ``source`` whose scratch copy could not be written."""
    return SourceError(
        f"{source}: cannot be copied to a scratch file in {exc.filename} ({exc.strerror}); "
        "set TMPDIR to a folder with room"
    )
