"""What every input format produces: a :class:`Dataset`, or a :class:`SourceError`.

The prediction matrix of a file is a read-only ``numpy.memmap`` (or an array), its form
(``probs``, ``logits`` or ``log_probs``) is always named by the caller or by the file,
never guessed from the values, and the labels are held in memory.
"""

from __future__ import annotations

import contextlib
import shlex
import tempfile
from dataclasses import dataclass, field
from typing import Any

import crossent

__all__ = [
    "PREDICTION_ARRAYS",
    "Dataset",
    "SourceError",
    "binary_column",
    "prediction_arrays",
    "scratch_file",
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
    row_ids: tuple[list[str], str] = ([], "")
    """A table's class columns of integers with a different value in every row (likely
    row ids), and the table's first column."""
    _cleanup: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)

    @property
    def n(self) -> int:
        return int(self.labels.shape[0])

    @property
    def classes(self) -> int:
        return int(self.values.shape[1])

    def row_id_hint(self) -> str:
        """What to pass if the class columns of likely row ids do identify rows ("" when
        there are none): a named pandas index written by ``to_csv`` is the first column,
        and is otherwise read as a class whose value is the row id."""
        names, first = self.row_ids
        if not names:
            return ""
        name = names[0]
        what = (
            f"the first column, {name!r}, is read as a class but holds integers, a "
            "different one in every row, as a pandas index written by to_csv does"
            if name == first
            else f"the class column {name!r} holds integers, a different one in every row, "
            "as row ids do"
        )
        return f"{what}; if it identifies rows, pass --id-column {shlex.quote(name)}"

    def close(self) -> None:
        """Drop the memory maps' temporary files."""
        self._cleanup.close()


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


def scratch_file() -> Any:
    """An anonymous temporary file in TMPDIR for unpacked or converted predictions.

    It has no name (POSIX unlinks it at once), so nothing is left behind however the run
    ends, SIGKILL included; a memory map of it keeps the data alive until it is dropped.
    """
    return tempfile.TemporaryFile(prefix="crossent-")
