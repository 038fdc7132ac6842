"""The input formats of ``crossent report``: a registry from file suffix to opener.

Each format is one :class:`InputFormat`: its suffixes, a one-line description (the
``--help`` text is built from these) and an ``open(path, form, dtype) -> Dataset``
function that raises :class:`SourceError` for any problem with the file.  A new format is
one opener function and one entry in :data:`FORMATS`; the help text and the "unknown
format" message follow.

:func:`open_dataset` checks what every format needs (a regular, non-empty file), then
dispatches on the suffix.  The form of the predictions is always named by the caller or
by the file; nothing here looks at the values.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ._columns import TableColumns
from ._dataset import Dataset, ScratchError, SourceError, boolean_class_ids, scratch_failed
from ._ids import first_repeat
from ._labels import TABLE_SUFFIXES as _TABLE_SUFFIXES
from ._labels import attach_labels, check_file
from ._magic import HEAD_BYTES as _HEAD_BYTES
from ._magic import binary_format, not_csv
from ._messages import printable
from ._npy import open_npy
from ._npz import open_npz
from ._pt import open_pt
from ._safetensors import open_safetensors
from ._tables import STDIN, open_arrow, open_csv, open_parquet

__all__ = [
    "FORMATS",
    "Dataset",
    "InputFormat",
    "Opener",
    "SourceError",
    "formats_help",
    "open_dataset",
]


Opener = Callable[[Path, str | None, str | None], Dataset]
"""``open(path, form, dtype)``: ``form`` and ``dtype`` as given on the command line, or None."""


@dataclass(frozen=True)
class InputFormat:
    """A file format: suffixes (lower case, with the dot), what it holds, and its opener;
    ``takes_dtype`` if ``--dtype`` means something for it (text formats); ``takes_columns``
    if it is a table, whose opener also takes the column options (``--label-column``,
    ``--id-column``, ``--class-columns``) as a fourth argument; ``takes_labels`` if it
    may hold predictions alone, whose labels ``--labels FILE`` gives (its opener returns
    a dataset whose ``labels`` may be None, completed by :func:`._labels.attach_labels`)."""

    suffixes: tuple[str, ...]
    description: str
    open: Opener
    takes_dtype: bool = False
    takes_columns: bool = False
    takes_labels: bool = False


FORMATS = (
    InputFormat(
        (".npz",),
        "an .npz with 'labels' and exactly one of 'probs', 'logits', 'log_probs' "
        "(the array's name says the form; a one-dimensional 'probs' or 'logits' is "
        "P(label = 1) or the log-odds of class 1 of a binary problem)",
        open_npz,
    ),
    InputFormat(
        (".csv",),
        "a .csv with a 'label' column (--label-column) and one column per class "
        "(--class-columns; default every other column but --id-column), probabilities unless "
        "--logits or --log-probs, float64 unless --dtype float32; one class column is "
        "P(label = 1) of a binary problem; '-' reads the CSV from standard input",
        open_csv,
        takes_dtype=True,
        takes_columns=True,
    ),
    InputFormat(
        (".parquet", ".pq"),
        "a .parquet like the CSV (its columns keep their stored dtype)",
        open_parquet,
        takes_columns=True,
    ),
    InputFormat(
        (".safetensors",),
        "a .safetensors with tensors named as in the .npz (read without pickle)",
        open_safetensors,
    ),
    InputFormat(
        (".arrow", ".feather", ".ipc"),
        "an Arrow IPC / Feather file like the Parquet",
        open_arrow,
        takes_columns=True,
    ),
    InputFormat(
        (".npy",),
        "a .npy of predictions (rows, classes), or (rows,) for P(label = 1) of a binary "
        "problem, probabilities unless --logits or --log-probs, with --labels FILE (a .npy, "
        ".npz, .safetensors or .pt of class ids, or a table's --label-column; read without "
        "pickle)",
        open_npy,
        takes_labels=True,
    ),
    InputFormat(
        (".pt", ".pth"),
        "a .pt/.pth written by torch.save: a dict of tensors named as in the .npz, a "
        "(predictions, labels) tuple or list of two tensors (the form from --logits or "
        "--log-probs, probabilities otherwise), or one tensor of predictions read as a .npy "
        "is (read with torch.load(weights_only=True), never unpickling objects; needs the "
        "torch extra)",
        open_pt,
        takes_labels=True,
    ),
)


def _format_of(suffix: str) -> InputFormat | None:
    return next((f for f in FORMATS if suffix in f.suffixes), None)


def formats_help() -> str:
    """One sentence per format, for ``--help``."""
    return "PATH is " + "; or ".join(f.description for f in FORMATS) + "."


def _known() -> str:
    suffixes = [s for f in FORMATS for s in f.suffixes]
    return ", ".join(suffixes[:-1]) + " or " + suffixes[-1]


def _refuse_binary(path: Path, *, csv: bool) -> None:
    """Refuse a compressed file (``preds.csv.gz``, or a ``.csv`` that holds gzip), and a
    ``.csv`` (``csv``) that holds a binary format (an ``.npz`` saved as ``preds.csv``):
    it was "unknown format '.gz'", or for a ``.csv`` a parse error quoting its binary
    bytes ("Expected 1 columns, got 3: PK\\x03\\x04...")."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError:
        return  # said by the reader
    found = binary_format(head)
    if found is not None and (csv or found.command is not None):
        inner = path.with_suffix("")  # preds.npy of preds.npy.gz: decompressed, not piped
        suffix = inner.suffix.lower()
        binary = found.command is not None and suffix != ".csv" and _format_of(suffix)
        raise SourceError(
            not_csv(str(path), found, str(path), inner=str(inner) if binary else None)
        )


def open_dataset(
    path: Path,
    *,
    form: str | None,
    dtype: str | None = None,
    columns: TableColumns | None = None,
    labels: Path | None = None,
) -> Dataset:
    """Open ``path`` (``-``: a CSV on standard input); ``form`` is a table's prediction form
    (None: probabilities), ``dtype`` a CSV's column dtype (None: float64), ``columns`` a
    table's column options, ``labels`` the file of labels of predictions stored alone
    (``--labels``)."""
    if path == STDIN:
        if labels is not None:
            raise SourceError(_NO_LABELS.format(path="standard input (CSV)", suffix=".csv"))
        try:
            return _unique_ids(_with_rows(open_csv(path, form, dtype, columns), path), columns)
        except ScratchError as exc:
            raise scratch_failed("standard input", exc) from exc
    # `crossent report <(zcat preds.csv.gz)` names a pipe: a CSV can come on standard input
    check_file(path, pipe_hint=" (a CSV can also be piped: ... | crossent report -)")
    suffix = path.suffix.lower()
    found = _format_of(suffix)
    if found is None or suffix == ".csv":
        _refuse_binary(path, csv=suffix == ".csv")
    if found is None:
        raise SourceError(f"{path}: unknown format {suffix or '(no extension)'!r}; use {_known()}")
    if dtype is not None and not found.takes_dtype:
        raise SourceError(f"{path}: --dtype applies to CSV files; {suffix} stores its dtype")
    if labels is not None and not found.takes_labels:
        raise SourceError(_NO_LABELS.format(path=path, suffix=suffix))
    try:
        if found.takes_columns:
            dataset = found.open(path, form, dtype, columns)  # type: ignore[call-arg]
        else:
            label_column = _label_column(path, columns, labels)
            dataset = found.open(path, form, dtype)
            if found.takes_labels:
                try:
                    attach_labels(dataset, path, labels, label_column)
                except BaseException:
                    dataset.close()
                    raise
    except ScratchError as exc:
        raise scratch_failed(path, exc) from exc
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    return _unique_ids(_with_rows(dataset, path), columns)


def _unique_ids(dataset: Dataset, columns: TableColumns | None) -> Dataset:
    """``dataset`` unless its ``--id-column`` names a row twice: refused, naming the id
    and both rows (an id is a row's name, shown beside its surprisal and compared between
    models' files; ``--id-column`` of a column that repeats was accepted without a word).
    The ids of a pandas index saved with the table (no ``--id-column``: ``pd.concat``
    without ``ignore_index`` repeats it) are shown as they are, with one line on
    standard error."""
    if dataset.ids is None:
        return dataset
    try:
        found = first_repeat(dataset.ids)
    except BaseException:  # (its scratch file closed, whatever the ids hold)
        dataset.close()
        raise
    if found is None:
        return dataset
    value, first, second = found
    named = None if columns is None else columns.id
    where = "the pandas index" if named is None else f"the {named!r} column (--id-column)"
    said = f"{dataset.source}: {where} has the id {value!r} in rows {first} and {second}"
    if named is not None:
        dataset.close()
        raise SourceError(f"{said}; --id-column needs a different id in every row")
    print(f"crossent: note: {printable(said)}; the ids are shown as written", file=sys.stderr)
    return dataset


_NO_LABELS = (
    "{path}: --labels gives the labels of predictions stored alone (.npy, .pt, .pth); "
    "a {suffix} file holds its own labels"
)


def _label_column(path: Path, columns: TableColumns | None, labels: Path | None) -> str:
    """The label column of a ``--labels`` table (``--label-column``, default ``label``);
    the other column options describe a table of predictions, which this is not."""
    if columns is None or columns == TableColumns():
        return "label"
    if (
        labels is not None
        and labels.suffix.lower() in _TABLE_SUFFIXES
        and columns.id is None
        and columns.classes is None
    ):
        return columns.label
    raise SourceError(
        f"{path}: --label-column, --id-column, --class-columns and --integer-labels apply "
        "to tables (--label-column also to a table given with --labels)"
    )


def _with_rows(dataset: Dataset, path: Path) -> Dataset:
    """``dataset`` if it has rows and classes (a stored ``(rows, 0)`` array has none)."""
    if dataset.n == 0:
        dataset.close()
        raise SourceError(f"{path}: there are no rows")
    if dataset.classes == 0:
        shape = tuple(dataset.values.shape)
        what = dataset.what or "the predictions"
        verb = "have" if what.startswith("the predictions") else "has"  # (a plural)
        dataset.close()
        raise SourceError(f"{path}: {what} {verb} no classes (shape {shape})")
    if dataset.labels.dtype.kind == "b":  # booleans: the classes 0 and 1 of two
        try:
            where = dataset.labels_source or str(path)
            dataset.labels = boolean_class_ids(dataset.labels, dataset.classes, where)
        except SourceError:
            dataset.close()
            raise
    return dataset
