"""Read a CSV or Parquet table: a ``label`` column and one column per class.

Or, in a Parquet or Arrow table, one class column holding a list of :math:`K` numbers in
each row (Hugging Face's ``list<double>``, ``fixed_size_list<float, K>``): its values are
the classes :math:`0, \\dots, K - 1`, named ``probs[0]`` .. ``probs[K-1]``
(:func:`_listed`, :func:`_list_block`).

pyarrow's streaming readers convert the table batch by batch into an anonymous temporary
file, mapped read-only as the prediction matrix, so memory stays bounded.  The matrix
keeps the stored dtype (float32 columns stay float32, so float32's tolerance applies when
the library validates them); integer columns become float64, and a mix of float32 and
float64 columns float32 (the widest tolerance of the two applies).  CSV
text has no dtype: its decimal columns are float64 unless ``--dtype float32`` says the
file was written from float32 values.

pyarrow infers a CSV column's type from the first block (16 MB) and then refuses a value
that does not fit it: a class column of whole numbers there (hard 0/1 predictions first)
and ``0.25`` later was "cannot be parsed".  Such a column is read again with the type the
whole column has: the reading restarts with the column's type named, float64 for a
number (after whole numbers or empty cells), text otherwise (after booleans, or a word
after numbers: then the column is named by the checks of its role, such as "must be
numeric to be a class"); ``--labels`` tables too.  Standard input is kept in an
anonymous scratch file as it is read, so that it can be read again.
"""

from __future__ import annotations

import functools
import io
import json
import re
import shlex
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ._columns import (
    ColumnChoice,
    TableColumns,
    ambiguous_integer_labels,
    choose_columns,
    integer_names,
    missing_label_hint,
    separator_hint,
)
from ._dataset import Dataset, SourceError, first_not_whole, scratch_file
from ._deps import require
from ._ids import exact_ids
from ._magic import HEAD_BYTES as _HEAD_BYTES
from ._magic import binary_format, not_csv

__all__ = ["STDIN", "open_arrow", "open_csv", "open_parquet", "read_label_column"]

STDIN = Path("-")
"""``-`` on the command line: a CSV table on standard input."""

_BATCH_ROWS = 1 << 16
_FLOAT64 = np.dtype(np.float64)
_CSV_BLOCK_BYTES = 1 << 24


def open_csv(
    path: Path, form: str | None, dtype: str | None = None, columns: TableColumns | None = None
) -> Dataset:
    """Open a CSV file (``-``: standard input); ``form`` names what its columns hold (None:
    probabilities), ``columns`` which columns are the label, the ids and the classes."""
    return _open_table(path, form, kind="csv", dtype=dtype, columns=columns)


def open_parquet(
    path: Path, form: str | None, dtype: str | None = None, columns: TableColumns | None = None
) -> Dataset:
    """Open a Parquet file; ``form`` names what its columns hold (None: probabilities).

    Its columns store their dtype (``dtype`` is refused by the format registry)."""
    return _open_table(path, form, kind="parquet", dtype=None, columns=columns)


def open_arrow(
    path: Path, form: str | None, dtype: str | None = None, columns: TableColumns | None = None
) -> Dataset:
    """Open an Arrow IPC file (Feather v2) or stream, a table like the CSV."""
    return _open_table(path, form, kind="arrow", dtype=None, columns=columns)


class _Replayable(io.RawIOBase):
    """A stream (standard input) that can be read again from its start: every byte read
    is kept in an anonymous scratch file (:func:`._dataset.scratch_file`)."""

    def __init__(self, source: Any) -> None:
        super().__init__()
        self._source = source
        self._copy = scratch_file()
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        kept = self._copy.seek(0, io.SEEK_END)
        count = 0
        if self._position < kept:
            self._copy.seek(self._position)
            count = int(self._copy.readinto(view) or 0)
        if count < len(view) and self._position + count >= kept:  # the copy ran out:
            fresh = int(self._source.readinto(view[count:]) or 0)  # fill from the source
            self._copy.seek(0, io.SEEK_END)  # (a short read misled pyarrow's CSV reader)
            self._copy.write(view[count : count + fresh])
            count += fresh
        self._position += count
        return count

    def rewind(self) -> None:
        self._position = 0

    def close(self) -> None:
        self._copy.close()
        super().close()


def _standard_input() -> _Replayable:
    """Standard input's bytes, replayable; refused when there is none (``<&-`` closes
    it, and Python then has no ``sys.stdin``: it was exit 3, an internal error) or it
    holds no byte (as an empty file is; it was pyarrow's "Empty CSV file")."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise SourceError(
            "'-' reads a CSV from standard input, which is closed; redirect a file to it "
            "(< preds.csv) or give the file's path"
        )
    replayable = _Replayable(stream)
    head = _head(replayable)
    found = binary_format(head)
    if not head or found is not None:
        replayable.close()
        if found is not None:  # was pyarrow's "Expected 2 columns, got 1: \x1f\x8b..."
            raise SourceError(not_csv("standard input", found))
        raise SourceError("standard input is empty")
    replayable.rewind()
    return replayable


def _head(stream: _Replayable) -> bytes:
    """The first :data:`._magic.HEAD_BYTES` bytes of ``stream`` (fewer if it holds fewer),
    kept in its copy: a pipe may give them in several short reads."""
    head = bytearray()
    while len(head) < _HEAD_BYTES:
        chunk = bytearray(_HEAD_BYTES - len(head))
        count = stream.readinto(chunk)
        if not count:
            break
        head += chunk[:count]
    return bytes(head)


@dataclass
class _Reading:
    """One table being read: where from, its format, the CSV columns whose type is
    named (:class:`_Retyped`: float64 or text, whatever their first block holds), and
    standard input kept for a second reading."""

    path: Path
    kind: str
    types: dict[str, str] = field(default_factory=dict)
    stdin: _Replayable | None = None

    def again(self, retyped: _Retyped) -> None:
        """Read the table again from its start, with the column's type named."""
        self.types[retyped.column] = retyped.type
        if self.stdin is not None:
            self.stdin.rewind()


class _Retyped(Exception):  # noqa: N818 (a signal to read again, not an error)
    """A CSV column whose first block held whole numbers, booleans or nothing, and a later
    block a value of another type: the table is read again with the column's type
    (``"float64"`` for a number, ``"string"`` otherwise)."""

    def __init__(self, column: str, type: str) -> None:
        super().__init__(column, type)
        self.column = column
        self.type = type


_CONVERSION_ERROR = re.compile(
    r"^In CSV column #(\d+): CSV conversion error to (u?int\d+|null|bool|double|float): "
    r"invalid value '(.*)'$"
)
"""pyarrow's message for a value that does not fit the type inferred from the first block."""


def _retyped(exc: Exception, names: list[str]) -> _Retyped | None:
    """The column, and the type it has, of a value that did not fit the type inferred
    from the first block (pyarrow's conversion error); None for any other error.

    A value is a number when pyarrow reads it as one (:func:`_first_not_number`), not
    Python's ``float``: ``0.8_0`` made a column of integers float64, which its second
    reading refused as "cannot be parsed", with no row.  A column of floating-point
    numbers with text after its first block (16 MiB) was refused so too: it is text
    now, refused with its row where it is a class column, read where it is ignored."""
    import pyarrow as pa

    found = _CONVERSION_ERROR.match(str(exc).splitlines()[0] if str(exc) else "")
    if found is None or int(found.group(1)) >= len(names):
        return None
    number = _first_not_number(pa.array([found.group(3)])) is None
    kind = "float64" if number and found.group(2) not in ("bool", "double", "float") else "string"
    return _Retyped(str(names[int(found.group(1))]), kind)


def _batches(reading: _Reading, text: list[str] | None = None) -> Iterator[Any]:
    """pyarrow record batches of the table, streamed; with ``text``, a CSV's columns
    ``text`` only, as their cells' text (:func:`_refuse_out_of_range`)."""
    pa = require("pyarrow", "reading CSV, Parquet and Arrow files", extra="cli")
    path = reading.path
    try:
        if reading.stdin is None and not _utf8_name(path):
            with open(path, "rb") as handle:  # pyarrow encodes a name as UTF-8, strictly
                yield from _batches_of(reading, handle, text)
        else:
            yield from _batches_of(reading, path, text)
    except pa.ArrowException as exc:
        said = str(exc).splitlines()[0]
        one = _ONE_COLUMN.match(said)  # the header is one column
        hint = separator_hint(one.group(1)) if one else ""
        raise SourceError(f"{path}: cannot be parsed ({said}){hint}") from exc
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc) from exc


_ONE_COLUMN = re.compile(r"^CSV parse error: Expected 1 columns, got \d+: (.*)$")
"""pyarrow's parse error of a row after a one-column header, and the row's text."""


def _utf8_name(path: Path) -> bool:
    """Whether ``path`` can be written in UTF-8, as pyarrow writes a file name: a name in
    another encoding (the byte 0xff, which Python holds as the surrogate U+DCFF) ended
    the report in "internal error (UnicodeEncodeError ...)", exit 3; such a file is
    opened here and handed to pyarrow as a file object."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _batches_of(reading: _Reading, source: Any, text: list[str] | None) -> Iterator[Any]:
    """:func:`_batches` of ``source``, the table's path or a file object of it."""
    import pyarrow as pa

    kind = reading.kind
    if kind == "parquet":
        import pyarrow.parquet as pa_parquet

        batches = pa_parquet.ParquetFile(source).iter_batches(batch_size=_BATCH_ROWS)
        yield from map(_without_views, batches)
    elif kind == "arrow":
        yield from map(_without_views, _arrow_batches(source))
    else:
        import pyarrow.csv as pa_csv

        options = pa_csv.ReadOptions(block_size=_CSV_BLOCK_BYTES)
        if reading.stdin is not None:
            source = reading.stdin
        conversion = _csv_conversion(pa_csv, reading.types)
        if text is not None:
            conversion.include_columns = text
            conversion.column_types = {name: pa.string() for name in text}
        reader = pa_csv.open_csv(source, read_options=options, convert_options=conversion)
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as exc:
                retyped = _retyped(exc, list(reader.schema.names))
                if retyped is None or retyped.column in reading.types:
                    raise
                raise retyped from exc
            yield batch


def _csv_conversion(pa_csv: Any, types: dict[str, str]) -> Any:
    """pyarrow's CSV conversion with ``nan`` read as the number NaN, not as a missing
    value: pyarrow's default null markers include ``nan`` and ``NaN``, which would make
    a NaN the file holds indistinguishable from an empty cell in the messages; the
    columns of ``types`` have the type named there (pyarrow's name) whatever their first
    block holds."""
    import pyarrow as pa

    return pa_csv.ConvertOptions(
        null_values=_null_markers(),
        column_types={name: pa.type_for_alias(kind) for name, kind in types.items()},
    )


def _null_markers() -> list[str]:
    """pyarrow's CSV null markers (an empty cell, ``NA``, ``null``, ...) but ``nan``
    (:func:`_csv_conversion`)."""
    import pyarrow.csv as pa_csv

    markers = pa_csv.ConvertOptions().null_values
    return [marker for marker in markers if marker.lstrip("-").lower() != "nan"]


def _without_views(batch: Any) -> Any:
    """``batch`` with its ``string_view`` and ``binary_view`` columns (Polars writes its
    strings so in Arrow IPC files, and its categoricals as dictionaries of them) as
    ``string`` and ``binary``, which the label, id and class columns are read as: a
    Polars file's string labels were refused ("it holds string_view") where the same
    labels as ``string`` name the classes, and its categorical labels ended in "internal
    error (ArrowNotImplementedError: ... 'array_take' ... string_view)", exit 3."""
    import pyarrow as pa

    if not hasattr(pa, "string_view"):  # pyarrow < 16 reads no view types
        return batch
    plain = [_plain_type(field.type) for field in batch.schema]  # a name may repeat
    if all(kind is None for kind in plain):
        return batch
    fields = [f.with_type(kind or f.type) for f, kind in zip(batch.schema, plain, strict=True)]
    columns = [
        column if kind is None else column.cast(kind)
        for column, kind in zip(batch.columns, plain, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields, batch.schema.metadata))


def _plain_type(kind: Any) -> Any:
    """``string`` for ``string_view``, ``binary`` for ``binary_view``, a dictionary of
    them for a dictionary of views (:func:`_without_views`); None for any other type."""
    import pyarrow as pa
    import pyarrow.types as pa_types

    if pa_types.is_dictionary(kind):
        values = _plain_type(kind.value_type)
        return None if values is None else pa.dictionary(kind.index_type, values, kind.ordered)
    return {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}.get(kind)


def _arrow_batches(source: Any) -> Iterator[Any]:
    """Record batches of an Arrow IPC file (Feather v2), or of an IPC stream; ``source``
    is its path or a file object of it."""
    import pyarrow as pa
    import pyarrow.ipc as pa_ipc

    try:
        reader = pa_ipc.open_file(source)
    except pa.ArrowInvalid:
        if _first_bytes(source, 4) == b"FEA1":
            raise SourceError(
                f"{source.name if hasattr(source, 'read') else source}: is a Feather V1 "
                "file, which pyarrow "
                "deprecates and crossent does not read; save it again as Feather V2 (the "
                "Arrow IPC file): pyarrow.feather.write_feather(table, path), or pandas' "
                "to_feather"
            ) from None
        with pa_ipc.open_stream(source) as stream:
            yield from stream
        return
    for index in range(reader.num_record_batches):
        yield reader.get_batch(index)


def _first_bytes(source: Any, count: int) -> bytes:
    """The first ``count`` bytes of ``source`` (a path, or a file object left at its
    start): a Feather V1 file was "cannot be parsed (Expected to read 826361158 metadata
    bytes, but only read 348)", its magic ``FEA1`` read as a length."""
    if hasattr(source, "seek"):
        source.seek(0)
        head = source.read(count)
        source.seek(0)
        return bytes(head)
    with open(source, "rb") as handle:
        return handle.read(count)


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> SourceError:
    return SourceError(
        f"{path}: is not UTF-8 text (byte {exc.object[exc.start : exc.start + 1]!r} in the "
        "column names); save it as UTF-8"
    )


def _open_table(
    path: Path, form: str | None, *, kind: str, dtype: str | None, columns: TableColumns | None
) -> Dataset:
    form = form or "probs"
    source = "standard input (CSV)" if path == STDIN else str(path)
    reading = _Reading(path, kind, stdin=_standard_input() if path == STDIN else None)
    if kind == "csv" and columns is not None and columns.id is not None:
        reading.types[columns.id] = "string"  # its cells as written (:mod:`._ids`)
    try:
        while True:
            dataset = Dataset(None, None, form, [], source, what=f"the predictions ({form})")
            if kind == "csv" and dtype is None:
                dataset.dtype_hint = (
                    "If the CSV was written from float32 values, pass --dtype float32 so "
                    "that float32's tolerance applies."
                )
            try:
                _convert(
                    reading,
                    dataset,
                    dtype=None if dtype is None else np.dtype(dtype),
                    options=columns or TableColumns(),
                )
            except _Retyped as retyped:
                dataset.close()
                reading.again(retyped)
                continue
            except BaseException:
                dataset.close()
                raise
            return dataset
    finally:
        if reading.stdin is not None:
            reading.stdin.close()


def _columns(reading: _Reading, batch: Any, options: TableColumns) -> ColumnChoice:
    """The label, id and class columns of a batch, after checking the column names."""
    import pyarrow.types as pa_types

    path = reading.path
    try:
        names = [str(name) for name in batch.schema.names]
    except UnicodeDecodeError as exc:  # pyarrow decodes the names lazily
        raise _not_utf8(path, exc) from exc
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise SourceError(
            f"{path}: column names must be unique; repeated: {', '.join(map(repr, repeated))}"
        )
    numeric = {  # a column of empty cells only (type null) is refused as empty, by row
        name: pa_types.is_floating(batch.column(name).type)
        or pa_types.is_integer(batch.column(name).type)
        or pa_types.is_null(batch.column(name).type)
        or _numeric_list(batch.column(name).type)
        for name in names
    }
    index = _pandas_index(batch.schema) + tuple(filter(None, [_unnamed_index(batch)]))
    trailing = _trailing_empty(batch, names)
    kept = names[:-1] if trailing else names
    choice, problem = choose_columns(
        kept,
        numeric,
        options,
        str(path),
        index=index,
        text_cell=functools.partial(_text_cell_anywhere, reading, batch),
        not_read=functools.partial(_not_read, batch),
    )
    if choice is None:
        raise SourceError(problem)
    choice = _listed(path, batch, choice)
    return replace(choice, ignored=[*choice.ignored, ""]) if trailing else choice


def _list_type(kind: Any) -> bool:
    """Whether ``kind`` is an Arrow list type: ``list``, ``large_list`` or
    ``fixed_size_list``."""
    import pyarrow.types as pa_types

    return bool(
        pa_types.is_list(kind) or pa_types.is_large_list(kind) or pa_types.is_fixed_size_list(kind)
    )


def _numeric_list(kind: Any) -> bool:
    """Whether a column of type ``kind`` holds a list of numbers (integers or floating
    point) in each row: ``list<double>``, ``large_list<float>``,
    ``fixed_size_list<float, 10>``, as Hugging Face datasets store class probabilities."""
    import pyarrow.types as pa_types

    if not _list_type(kind):
        return False
    return bool(pa_types.is_floating(kind.value_type) or pa_types.is_integer(kind.value_type))


def _listed(path: Path, batch: Any, choice: ColumnChoice) -> ColumnChoice:
    """``choice`` with its class column of lists (:func:`_numeric_list`), if it has one,
    read as the classes: the :math:`K` values of a row's list are its classes
    :math:`0, \\dots, K - 1`, named ``name[0]`` .. ``name[K-1]``; :math:`K` is a
    fixed-size list's size, else the length of the first row's list (every row's is
    checked by :func:`_list_block`).  Beside other class columns it is refused, naming
    both: which of them holds which class is written nowhere."""
    lists = [name for name in choice.classes if _numeric_list(batch.column(name).type)]
    if not lists:
        return choice
    name = lists[0]
    kind = batch.column(name).type
    others = [other for other in choice.classes if other != name]
    if others:
        raise SourceError(
            f"{path}: column {name!r} holds a list of class values in each row ({kind}), "
            f"read as the classes only when it is the only class column, and {others[0]!r} "
            f"is a class column too: list the class columns with --class-columns "
            f"{shlex.quote(name)}, or name {others[0]!r} with --id-column if it identifies "
            "rows"
        )
    column = batch.column(name)
    if hasattr(kind, "list_size"):
        size = int(kind.list_size)
    elif len(column):
        _refuse_null_lists(path, column.slice(0, 1), 0, name)
        size = int(column.value_lengths()[0].as_py())
    else:
        raise SourceError(
            f"{path}: column {name!r} holds lists, and its first batch has no row to show "
            "their length (the number of classes)"
        )
    if size == 0:
        raise SourceError(f"{path}: column {name!r} holds empty lists: no class values")
    return replace(choice, classes=[f"{name}[{k}]" for k in range(size)], listed=name)


def _refuse_null_lists(path: Path, column: Any, first_row: int, name: str) -> None:
    """A null in place of a row's list is refused with its column and row."""
    if column.null_count:
        row = first_row + int(np.flatnonzero(column.is_null().to_numpy(False))[0])
        raise SourceError(
            f"{path}: the {name!r} column holds null in row {row}, not a list of class values"
        )


def _list_block(path: Path, column: Any, first_row: int, size: int, name: str) -> Any:
    """A batch's column of lists as an array (rows, ``size``) of the lists' values, their
    stored dtype: Arrow's flattened values, a view where they hold no null, reshaped;
    no loop over the rows.  A null list, a list of another length than ``size`` (the
    first row's), or a null value in a list is refused with its row."""
    import pyarrow.compute as pc

    _refuse_null_lists(path, column, first_row, name)
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    wrong = np.flatnonzero(lengths != size)
    if wrong.size:
        row = int(wrong[0])
        raise SourceError(
            f"{path}: the {name!r} column holds a list of {int(lengths[row])} values in row "
            f"{first_row + row}, and the first row's holds {size}: every row's list must hold "
            "one value per class, the same number in every row"
        )
    values = column.flatten()
    if values.null_count:
        at = int(np.flatnonzero(values.is_null().to_numpy(False))[0])
        raise SourceError(
            f"{path}: the {name!r} column's list in row {first_row + at // size} holds null "
            f"at position {at % size}, not a number"
        )
    return _to_numpy(values).reshape(len(column), size)


def _text_cell(batch: Any, name: str) -> str:
    """Where the batch's column ``name`` first holds a cell that is not a number:
    " (row 1 holds '-1.#INF', not a number)", or "" (a column of other values).

    A number is what the CSV reader reads as float64: pyarrow's own parse, after the
    spaces and tabs it trims.  Python's ``float`` was asked before, and it reads
    ``0.8_0``, ``0.8`` and a no-break space, and Arabic-Indic digits, which the reader
    does not: such a column was refused with no row and no value."""
    import pyarrow.types as pa_types

    column = batch.column(name)
    if not (pa_types.is_string(column.type) or pa_types.is_large_string(column.type)):
        return ""
    row = _first_not_number(column)
    if row is None:
        return ""
    return f" (row {row} holds {column[row].as_py()!r}, not a number)"


def _text_cell_anywhere(reading: _Reading, batch: Any, name: str) -> str:
    """:func:`_text_cell` of the first batch, or else of the whole CSV column read again
    as text: a column read as text for a cell after its first block (16 MiB) was refused
    as "must be numeric to be a class" with no row and no value."""
    said = _text_cell(batch, name)
    if said or reading.kind != "csv" or reading.types.get(name) != "string":
        return said
    if reading.stdin is not None:
        reading.stdin.rewind()
    rows = 0
    for part in _batches(reading, text=[name]):
        row = _first_not_number(part.column(name))
        if row is not None:
            return f" (row {rows + row} holds {part.column(name)[row].as_py()!r}, not a number)"
        rows += part.num_rows
    return ""


def _first_not_number(column: Any) -> int | None:
    """The index of the first cell of a column of text that the CSV reader does not read
    as float64 (pyarrow's own parse, after the spaces and tabs it trims), or None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = pc.utf8_trim(column, characters=" \t")

    def fails(stop: int) -> bool:  # whether one of the first ``stop`` cells is no number
        try:
            pc.cast(texts.slice(0, stop), pa.float64())
        except pa.ArrowInvalid:
            return True
        return False

    if not fails(len(texts)):
        return None
    good, bad = 0, len(texts)  # the first ``good`` cells are numbers, the first ``bad`` not
    while bad - good > 1:  # (a bisection: one cast of the column, not one a cell)
        middle = (good + bad) // 2
        good, bad = (good, middle) if fails(middle) else (middle, bad)
    return bad - 1


def _not_read(batch: Any, name: str) -> str:
    """Why the batch's column ``name``, of values in a type not read, is no class
    column, and what to do (main: "must be numeric to be a class; name it with
    --id-column ...", of a column of lists, or of decimals); "" for any other column.
    A list of numbers is read (:func:`_listed`); a list of other values is refused."""
    import pyarrow.types as pa_types

    kind = batch.column(name).type
    if _list_type(kind):
        return (
            f"holds a list in each row ({kind}); a list column is read as the classes only "
            "when it holds numbers (integers or floating point), one per class: write them "
            "as numbers, or save the predictions and labels as arrays in an .npz"
        )
    if pa_types.is_decimal(kind):
        return (
            f"holds decimals ({kind}), which are not read as classes: cast it to float64 "
            f"first (pandas: df[{name!r}] = df[{name!r}].astype('float64'))"
        )
    return ""


def _trailing_empty(batch: Any, names: list[str]) -> bool:
    """Whether the table's last column, not its only one, is unnamed and holds nothing
    (type null: every cell empty): what a comma at the end of each CSV line makes.  It
    is ignored; it was taken for a pandas index (an unnamed column), and its empty cells
    were the row ids."""
    import pyarrow.types as pa_types

    return len(names) > 1 and names[-1] == "" and pa_types.is_null(batch.column(-1).type)


_UNNAMED_INDEX = "Unnamed: 0"
"""The name pandas' ``read_csv`` gives an unnamed first column: the index ``to_csv``
wrote, kept as a column when the frame is saved again with ``index=False``."""


def _unnamed_index(batch: Any) -> str | None:
    """:data:`_UNNAMED_INDEX` if it is the table's first column and holds integers: a
    pandas index, provided that its values are the row numbers 0, 1, 2, ... (checked
    by :func:`_check_row_numbers` on every batch; anything else is refused, not read)."""
    import pyarrow.types as pa_types

    first = batch.schema.field(0) if batch.num_columns else None  # not .names: 20 000
    if first is not None and first.name == _UNNAMED_INDEX and pa_types.is_integer(first.type):
        return _UNNAMED_INDEX
    return None


def _check_row_numbers(path: Path, batch: Any, first_row: int) -> None:
    """The first column, :data:`_UNNAMED_INDEX`, holds the row numbers of this batch."""
    column = batch.column(_UNNAMED_INDEX)
    _refuse_missing(path, column, first_row, _UNNAMED_INDEX)
    values = _to_numpy(column)
    wrong = np.flatnonzero(values != np.arange(first_row, first_row + values.size))
    if wrong.size:
        row = int(wrong[0])
        raise SourceError(
            f"{path}: the first column, {_UNNAMED_INDEX!r} (pandas' name for an unnamed index "
            "column), is taken as the row ids only when it holds the row numbers 0, 1, "
            f"2, ...; row {first_row + row} has {values[row]}: pass --id-column "
            f"{shlex.quote(_UNNAMED_INDEX)} if it identifies rows, or list the class columns "
            "with --class-columns"
        )


def _pandas_index(schema: Any) -> tuple[str, ...]:
    """The columns a pandas index was stored in (its ``pandas`` schema metadata; a
    RangeIndex is stored as metadata alone, in no column)."""
    try:
        stored = json.loads((schema.metadata or {})[b"pandas"])["index_columns"]
    except (KeyError, TypeError, ValueError):
        return ()
    return tuple(name for name in stored if isinstance(name, str))


def _labels(
    reading: _Reading,
    batch: Any,
    first_row: int,
    choice: ColumnChoice,
    integer_labels: str | None,
) -> Any:
    """The label column as class ids: integers as the positions of the class columns, or
    as their names (:func:`_integer_labels`); booleans as 0 and 1 (False, True); strings
    (or a pandas categorical of strings) as the index of the class column each one
    names, a string of digits too (a Parquet or Arrow string ``"2"`` names a column
    ``"2"``, never the third column). A CSV's whole numbers that pyarrow read as floats
    (it reads ``+0`` and ``+1`` so) are read again as text: signed integers are integers
    (:func:`_signed_integers`).
    """
    import pyarrow.types as pa_types

    path, name = reading.path, choice.label
    column = batch.column(name)
    if pa_types.is_dictionary(column.type):  # a pandas categorical
        column = column.dictionary_decode()
    if pa_types.is_null(column.type):  # empty cells only: "it holds null" said less
        _refuse_missing(path, column, first_row, name)
    if pa_types.is_boolean(column.type):
        _refuse_missing(path, column, first_row, name)
        _refuse_boolean_names(path, name, choice.classes)
        return column.to_numpy(zero_copy_only=False)  # 0 and 1: _dataset.boolean_class_ids
    if pa_types.is_string(column.type) or pa_types.is_large_string(column.type):
        _refuse_missing(path, column, first_row, name)
        # a CSV's cells have no type: its text "1" is the integer 1 (pyarrow reads the
        # column as text for "+0"); a Parquet/Arrow string is a name, digits or not
        # ("0", "1", "2" beside columns a, b, c were read as positions: issue 13)
        csv = reading.kind == "csv"
        values = _signed_integers(path, column, first_row, name) if csv else None
        if values is not None:
            return _integer_labels(path, values, first_row, name, choice.classes, integer_labels)
        if choice.listed is not None:
            raise _unnamed_list_classes(path, column, name, choice)
        return _labels_by_name(path, column, first_row, name, choice.classes, csv=csv)
    if reading.kind == "csv" and reading.types.get(name) != "string" and _whole(column):
        raise _Retyped(name, "string")  # ``+0`` was read as 0.0: its text is read again
    if not pa_types.is_integer(column.type):
        raise _not_class_ids(path, name, _label_type(column, first_row))
    _refuse_missing(path, column, first_row, name)
    values = _to_numpy(column)
    # uint64 stays: as int64, 2**64 - 1 would be refused as the label -1
    values = values if values.dtype == np.uint64 else values.astype(np.int64)
    return _integer_labels(path, values, first_row, name, choice.classes, integer_labels)


def _unnamed_list_classes(path: Path, column: Any, name: str, choice: ColumnChoice) -> SourceError:
    """The refusal of string labels beside a column of lists: its classes are the
    positions 0..K-1 in the lists, which no string names."""
    seen = sorted(set(column.unique().to_pylist()))
    shown = ", ".join(map(repr, seen[:4])) + (", ..." if len(seen) > 4 else "")
    last = len(choice.classes) - 1
    return SourceError(
        f"{path}: the {name!r} column holds strings ({shown}), and the classes are the "
        f"positions 0..{last} in the lists of column {choice.listed!r}, which have no "
        f"names: write the labels as the class ids 0..{last} (the position of each "
        "row's class in its list)"
    )


def _whole(column: Any) -> bool:
    """Whether a column of floating-point numbers holds finite whole numbers only."""
    import pyarrow.types as pa_types

    if not pa_types.is_floating(column.type):
        return False
    values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    values = values[~np.isnan(values)]  # (a null: refused with its row, as text)
    return bool(np.isfinite(values).all() and (values == np.floor(values)).all())


_SIGNED_INTEGER = r"^[+-]?[0-9]+$"
"""A CSV label cell's text (trimmed) that is an integer: ``1``, ``+0``, ``-1``."""


def _signed_integers(path: Path, column: Any, first_row: int, name: str) -> Any:
    """A CSV label column read as text, as int64 where each cell is a signed integer
    (``+0`` is 0, ``-1`` is -1: refused later as a label, with its row); None where a
    cell is not a number (the labels name class columns). Numbers that are not such
    integers (``1.0``) are refused with the first one's row, and so is an integer past
    int64 (with its text: it was "read as 1e+23", "write the class ids as integers").
    pyarrow reads ``+0`` as the float 0.0, and the column was refused as "floating-point
    numbers (row 0 is read as 1.0)", naming a row that held ``1``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = pc.utf8_trim_whitespace(column)  # as the CSV reader does
    integer = pc.match_substring_regex(texts, _SIGNED_INTEGER).to_numpy(zero_copy_only=False)
    # the null markers (an empty cell, NA) of a column read again as text are text: they
    # made "1.0" and an empty cell "row 0 has '1.0', which names none"
    missing = pc.is_in(texts, value_set=pa.array(_null_markers())).to_numpy(False)
    if missing.any() and (integer | missing).all():
        _refuse_missing(
            path, pa.array(np.zeros(missing.size, np.int8), mask=missing), first_row, name
        )
    if integer.all():
        try:
            return pc.cast(pc.replace_substring_regex(texts, r"^\+", ""), pa.int64()).to_numpy(
                zero_copy_only=False
            )
        except pa.ArrowInvalid:  # past int64: its row and its text, not "1e+23"
            cells = texts.to_pylist()
            past = [k for k, cell in enumerate(cells) if not -(2**63) <= int(cell) < 2**63]
            if past:
                raise _not_class_ids(
                    path,
                    name,
                    f"{cells[past[0]]} in row {first_row + past[0]}, an integer past int64's "
                    "range, which no class id is",
                ) from None
            integer = np.zeros_like(integer)
    try:
        values = pc.cast(texts.filter(pa.array(~missing)), pa.float64())
    except pa.ArrowInvalid:
        return None  # a name
    numbers = np.flatnonzero(~missing)
    k = int(np.flatnonzero(~integer[numbers])[0])
    shown = float(values.to_numpy(zero_copy_only=False)[k])
    raise _not_class_ids(path, name, _floats_at(first_row + int(numbers[k]), shown))


def _not_class_ids(path: Path, name: str, holds: str) -> SourceError:
    """The refusal of a label column that ``holds`` something other than class ids."""
    return SourceError(
        f"{path}: the {name!r} column must hold integers (class ids), booleans, or the "
        f"names of the class columns; it holds {holds}"
    )


def _floats_at(row: int, value: float) -> str:
    """What a label column of floating-point numbers holds, shown by ``row``'s ``value``."""
    return (
        f"floating-point numbers (row {row} is read as {value!r}); write the class ids as "
        "integers (1, not 1.0)"
    )


def _label_type(column: Any, first_row: int) -> str:
    """What a label column that is not integers holds; for floating-point numbers, the
    first that is not whole (NaN too; else the first) and its row (``1.5``; ``1.0``; or
    ``1e+23``, an integer too large for int64 that the CSV reader took as a float):
    "it holds double" said neither where nor what to write instead."""
    import pyarrow.types as pa_types

    if not pa_types.is_floating(column.type):
        return str(column.type)
    values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    # a null (an empty cell) is no NaN to show ("row 9 is read as nan"): numbers only
    numbers = np.flatnonzero(column.is_valid().to_numpy(zero_copy_only=False))
    k = int(numbers[first_not_whole(values[numbers])]) if numbers.size else 0
    return _floats_at(first_row + k, float(values[k]))


_BOOLEAN_NAMES = {"false": 0, "0": 0, "true": 1, "1": 1}
"""Class-column names (lower case) that a boolean label may mean by name: the spellings
pyarrow reads as False and True, and the class each is under the boolean rule."""


def _refuse_boolean_names(path: Path, name: str, classes: list[str]) -> None:
    """Boolean labels are the classes 0 (False) and 1 (True); refuse them beside a class
    column named by a boolean at the other position (columns ``True, False``: the label
    ``True`` names the first column and would be read as the second), where a label's
    name and its class disagree, rather than pick one."""
    wrong = [
        column
        for k, column in enumerate(classes)
        if _BOOLEAN_NAMES.get(column.strip().lower(), k) != k
    ]
    if len(classes) >= 2 and wrong:
        raise SourceError(
            f"{path}: the {name!r} column holds booleans, read as the classes 0 (False, the "
            f"first class column) and 1 (True, the second), and the class column "
            f"{wrong[0]!r} is at position {classes.index(wrong[0])}: a label would name one "
            "column and be read as another; order the class columns False, True with "
            "--class-columns, or write the labels as the class positions 0 and 1"
        )


def _integer_labels(
    path: Path, values: Any, first_row: int, name: str, classes: list[str], mode: str | None
) -> Any:
    """Integer labels as class ids.  ``mode`` is ``--integer-labels``: ``"positions"``
    (or None) keeps them, a label :math:`y` naming the class column at position
    :math:`y`; ``"names"`` maps each to the position of the class column named by it
    (``str(y)``), refusing a label that names none.  Without ``mode``, class columns
    named by integers other than ``0..K-1`` in order make the labels ambiguous
    (:func:`._columns.ambiguous_integer_labels`): refused, never guessed."""
    if len(classes) < 2:  # P(label = 1): the labels are 0 and 1, whatever the name
        return values
    shown = ", ".join(map(repr, classes[:6])) + (", ..." if len(classes) > 6 else "")
    if mode is None and _ambiguous(tuple(classes)):
        raise SourceError(
            f"{path}: the class columns are named by integers ({shown}), not 0..K-1 in "
            f"order, and the {name!r} column holds integers, which could be their names or "
            "their positions: pass --integer-labels names (the label 3 is the column named "
            "'3') or --integer-labels positions (the label 0 is the first class column)"
        )
    if mode != "names":
        return values
    named = integer_names(classes)
    if named is None:
        raise SourceError(
            f"{path}: --integer-labels names reads the {name!r} column's integers as the "
            f"names of the class columns, and not every class column is named by an "
            f"integer ({shown})"
        )
    twice = [classes[k] for k, value in enumerate(named) if named.count(value) > 1]
    if twice:  # '1' and '01': the label 1 names both
        raise SourceError(
            f"{path}: --integer-labels names reads the {name!r} column's integers as the "
            f"names of the class columns, and the columns {', '.join(map(repr, twice))} "
            "name the same integer; rename one, or pass --integer-labels positions"
        )
    unique, inverse = np.unique(values, return_inverse=True)
    position = {value: k for k, value in enumerate(named)}
    codes = np.array([position.get(int(value), -1) for value in unique], dtype=np.int64)
    found = codes[inverse.reshape(-1)]
    if found.size and found.min() < 0:
        row = int(np.flatnonzero(found < 0)[0])
        raise SourceError(
            f"{path}: the {name!r} column holds integers, read as the names of the class "
            f"columns (--integer-labels names); row {first_row + row} has {values[row]}, "
            f"which names none (class columns: {shown})"
        )
    return found


@functools.lru_cache(maxsize=4)
def _ambiguous(classes: tuple[str, ...]) -> bool:
    """:func:`._columns.ambiguous_integer_labels`, remembered: it is asked of every batch,
    and of 20 000 class columns it cost more than reading a batch's labels."""
    return ambiguous_integer_labels(list(classes))


def _labels_by_name(
    path: Path, column: Any, first_row: int, name: str, classes: list[str], *, csv: bool = False
) -> Any:
    """String labels as the index of the class column each names; a label that names
    none is an error with its row.  One class column (P(label = 1)) names one class
    only, so strings there are refused: which of them is class 1 is written nowhere.
    A CSV's column of class ids with other text in it (:func:`_mixed_labels`) is said
    so, with the row of the text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(classes) == 1:
        seen = sorted(set(column.unique().to_pylist()))
        shown = ", ".join(map(repr, seen[:4])) + (", ..." if len(seen) > 4 else "")
        raise SourceError(
            f"{path}: the {name!r} column holds strings ({shown}), and the one class column "
            f"{classes[0]!r} is P(label = 1) of a binary problem: which string is class 1 "
            "is not in the file; write the labels as 0 and 1 (or True and False)"
        )
    codes = pc.index_in(column, value_set=pa.array(classes, type=pa.string()))
    if codes.null_count:
        row = int(np.flatnonzero(codes.is_null().to_numpy(False))[0])
        if csv:
            _mixed_labels(path, column, codes, first_row, name, classes)
        raise SourceError(
            f"{path}: the {name!r} column holds strings, read as the names of the class "
            f"columns; row {first_row + row} has {column[row].as_py()!r}, which names none "
            f"(class columns: {', '.join(map(repr, classes))})"
        )
    return codes.to_numpy(zero_copy_only=False).astype(np.int64)


def _mixed_labels(
    path: Path, column: Any, codes: Any, first_row: int, name: str, classes: list[str]
) -> None:
    """Refuse a CSV label column that holds class ids (integers) and other text, naming
    the text's row: ``0``, ``1``, then ``x`` was refused as "row 0 has '0', which names
    none", the row of a good label; ``1`` beside the class name ``a``, as both."""
    import pyarrow.compute as pc

    texts = pc.utf8_trim_whitespace(column)  # as _signed_integers reads a class id
    integer = pc.match_substring_regex(texts, _SIGNED_INTEGER).to_numpy(zero_copy_only=False)
    named = codes.is_valid().to_numpy(zero_copy_only=False)
    if not integer.any():
        return
    first = int(np.flatnonzero(integer)[0])
    number = f"row {first_row + first} has {column[first].as_py()!r}"
    other = np.flatnonzero(~integer & ~named)
    if other.size:
        row = int(other[0])
        raise SourceError(
            f"{path}: the {name!r} column holds class ids ({number}) and, in row "
            f"{first_row + row}, {column[row].as_py()!r}, which is no integer and names no "
            f"class column (class columns: {', '.join(map(repr, classes))})"
        )
    names = np.flatnonzero(named & ~integer)
    if not names.size:  # (every cell a class id: never here, _signed_integers read them)
        return
    row = int(names[0])
    raise SourceError(
        f"{path}: the {name!r} column holds both class ids ({number}) and class names "
        f"(row {first_row + row} has {column[row].as_py()!r}); write every label one way"
    )


def _refuse_missing(path: Path, column: Any, first_row: int, name: str) -> None:
    """A missing value (a null: an empty CSV cell, a null marker such as ``NA``, a Parquet
    or Arrow null) is refused with its column and row; converted, it would be a NaN and
    reported as one, a value the file does not hold."""
    if column.null_count:
        first = first_row + int(np.flatnonzero(column.is_null().to_numpy(False))[0])
        raise SourceError(
            f"{path}: the {name!r} column is empty in row {first} (an empty cell or a null "
            "marker such as NA)"
        )


def _to_numpy(column: Any) -> Any:
    """``column.to_numpy(zero_copy_only=False)``, but a column of integers or floats
    without a null as a read-only view of its values' buffer: Arrow's conversion to NumPy
    imports pandas where it is installed (it sets up its pandas support first), 0.25 s of
    CPU a report on a table that has no use for it."""
    import pyarrow.types as pa_types

    kind = column.type
    fixed = pa_types.is_integer(kind) or pa_types.is_floating(kind)
    if not fixed or column.null_count or not hasattr(column, "buffers"):  # nulls, chunks
        return column.to_numpy(zero_copy_only=False)
    dtype = np.dtype(kind.to_pandas_dtype())
    return np.frombuffer(
        column.buffers()[1], dtype=dtype, count=len(column), offset=column.offset * dtype.itemsize
    )


def _ids(column: Any) -> Any:
    """A batch's row ids, missing ones told apart: a null (an empty cell, a null marker,
    a Parquet null) as None (JSON's null) and a NaN as the text ``"nan"`` (as an
    infinity is given); converted to NumPy both were NaN, and both printed as ``None``."""
    import pyarrow.compute as pc
    import pyarrow.types as pa_types

    floating = pa_types.is_floating(column.type)
    if not column.null_count and not (floating and pc.any(pc.is_nan(column)).as_py()):
        return _to_numpy(column)
    ids = np.empty(len(column), dtype=object)
    for k, value in enumerate(column.to_pylist()):  # one by one: an id may be a list
        ids[k] = value
    if floating:
        ids[pc.fill_null(pc.is_nan(column), False).to_numpy(zero_copy_only=False)] = "nan"
    return ids


def _stored_dtype(path: Path, batch: Any, columns: list[str]) -> np.dtype[Any]:
    """The dtype of the prediction matrix: float64, or float32 when a class column is
    float32 (or float16): a mix of float32 and float64 columns is checked with the
    widest tolerance of their dtypes, float32's (as float64, a float32 column's row
    sums, off 1 by float32's rounding, were refused), its float64 columns rounded to
    float32, which is the precision a row with a float32 column has.  Float16 class
    columns, all of them, stay float16 (:func:`_matrix_dtype`)."""
    import pyarrow.types as pa_types

    dtypes = []
    for name in columns:
        kind = batch.column(name).type
        if pa_types.is_floating(kind):
            dtypes.append(np.dtype(kind.to_pandas_dtype()))
        elif pa_types.is_integer(kind):
            dtypes.append(np.dtype(np.float64))
        else:
            raise SourceError(f"{path}: column {name!r} must be numeric; it holds {kind}")
    return _matrix_dtype(dtypes)


def _matrix_dtype(dtypes: list[np.dtype[Any]]) -> np.dtype[Any]:
    """The prediction matrix's dtype for class columns of ``dtypes`` (an integer
    column's as float64): float16 when every one is float16, whose row sums are then
    checked with float16's tolerance, as the same values in an .npz are (as float32, a
    Parquet or Arrow file of float16 probabilities such as 0.9, 0.1, whose sum is
    0.99988 in float16, was refused: |error| 0.000122 > float32's 6.15e-05); else
    float32 when one is narrower than float64, else float64 (:func:`_stored_dtype`)."""
    if dtypes and all(d == np.float16 for d in dtypes):
        return np.dtype(np.float16)
    return np.dtype(np.float32 if any(d.itemsize < 8 for d in dtypes) else np.float64)


def _block_dtype(whole: np.ndarray[Any, Any]) -> np.dtype[Any]:
    """:func:`_matrix_dtype` of a block read whole: an integer block's as float64 (as
    int32 class columns, float32 rounded 16777217 to 16777216 with no word)."""
    return _matrix_dtype([whole.dtype if whole.dtype.kind == "f" else _FLOAT64])


def _convert(
    reading: _Reading,
    dataset: Dataset,
    *,
    dtype: np.dtype[Any] | None,
    options: TableColumns,
) -> None:
    """Stream the table's rows into a scratch file mapped as ``dataset.values``."""
    path = reading.path
    sink = dataset._cleanup.enter_context(scratch_file())
    rows, label_parts, id_parts, stored = 0, [], [], dtype
    as_text = False  # whether the ids are a CSV's cells (:func:`._ids.exact_ids`)
    chosen: ColumnChoice | None = None
    distinct: dict[str, list[Any]] | None = None  # integer default classes, while distinct
    first_column = ""
    suspect: list[str] = []  # CSV class columns holding 0 or an infinity: text checked
    schema: Any = None  # the columns' names and types: the choice is made once for them
    uniform = False  # whether every class column has one numeric type
    for batch in _batches(reading):
        if schema is None or not batch.schema.equals(schema):
            choice = _columns(reading, batch, options)
            if chosen is not None and choice != chosen:
                raise SourceError(f"{path}: the columns change within the file")
            chosen, schema = choice, batch.schema
            uniform = choice.listed is None and _one_numeric_type(schema, choice.classes)
        columns = choice.classes
        if options.classes is None:
            if choice.listed is None:
                distinct = _track_distinct_integers(batch, columns, distinct)
            first_column = str(batch.schema.field(0).name)
            if _UNNAMED_INDEX not in (options.id, options.label) and _unnamed_index(batch):
                _check_row_numbers(path, batch, rows)
        label_parts.append(_labels(reading, batch, rows, choice, options.integer_labels))
        # a CSV's --id-column, or to_csv's unnamed index, is read as text (the first from
        # the start, :func:`_open_table`; the second again, after one block): ids as written
        as_text = reading.kind == "csv" and choice.id is not None and choice.id in (options.id, "")
        if as_text and choice.id is not None and choice.id not in reading.types:
            raise _Retyped(choice.id, "string")
        if choice.id is not None:
            id_parts.append(batch.column(choice.id) if as_text else _ids(batch.column(choice.id)))
        if choice.listed is not None:  # one column of lists: integers are read as float64
            whole = _list_block(
                path, batch.column(choice.listed), rows, len(columns), choice.listed
            )
            batch_dtype = _block_dtype(whole)
        else:
            whole = _whole_block(batch, columns) if uniform else None
            if whole is None:
                for name in columns:  # before the dtypes: an empty column's type is null
                    _refuse_missing(path, batch.column(name), rows, name)
            batch_dtype = (
                _stored_dtype(path, batch, columns) if whole is None else _block_dtype(whole)
            )
        stored = stored or batch_dtype
        if whole is not None:
            with np.errstate(over="ignore"):  # --dtype float32 of 1e39: refused below
                block = whole.astype(stored, copy=False)
            if whole.dtype.kind == "f" and whole.dtype.itemsize > block.itemsize:
                lost = ((block == 0) & (whole != 0)) | (np.isinf(block) & np.isfinite(whole))
                for k in np.flatnonzero(lost.any(axis=0))[:1]:  # the first, column by column
                    _refuse_narrowed(
                        path, whole[:, k], block[:, k], rows, columns[k], asked=dtype is not None
                    )
        else:
            block = np.empty((batch.num_rows, len(columns)), dtype=stored)
            for k, name in enumerate(columns):
                column = batch.column(name)
                _refuse_missing(path, column, rows, name)
                values = _to_numpy(column)
                with np.errstate(over="ignore"):  # --dtype float32 of 1e39: refused below
                    block[:, k] = values
                if values.dtype.kind == "f" and values.dtype.itemsize > block.itemsize:
                    _refuse_narrowed(path, values, block[:, k], rows, name, asked=dtype is not None)
        if reading.kind == "csv" and len(suspect) < len(columns):
            suspect += _out_of_range_suspects(block, columns, dataset.form, suspect)
        sink.write(np.ascontiguousarray(block).data)
        rows += batch.num_rows
    sink.flush()
    if suspect:
        _refuse_out_of_range(reading, suspect)
    if distinct and rows > 2:
        _refuse_row_ids(path, _row_id_columns(distinct), first_column)
    if chosen is not None:
        dataset.class_names = list(chosen.classes)
        dataset.columns = chosen.record()
        if chosen.id is not None and as_text:
            import pyarrow as pa

            dataset.ids = exact_ids(pa.concat_arrays(id_parts), _null_markers())
        elif chosen.id is not None:
            dataset.ids = np.concatenate(id_parts)
    dataset.labels = np.concatenate(label_parts) if label_parts else np.zeros(0, np.int64)
    classes = len(dataset.class_names)
    dataset.values = (
        np.memmap(sink, dtype=stored or np.float64, mode="r", shape=(rows, classes))
        if rows
        else np.zeros((0, max(classes, 1)))
    )


def _one_numeric_type(schema: Any, columns: list[str]) -> bool:
    """Whether the ``columns`` of ``schema`` all have one type, an integer or a floating
    point one: their batches are converted whole (:func:`_whole_block`)."""
    import pyarrow.types as pa_types

    kinds = {schema.field(name).type for name in columns}
    if len(kinds) != 1:
        return False
    kind = kinds.pop()
    return bool(pa_types.is_integer(kind) or pa_types.is_floating(kind))


def _whole_block(batch: Any, columns: list[str]) -> Any:
    """The ``columns`` of ``batch``, all of one numeric type, as one C-ordered array
    (rows, columns) of that type, converted by Arrow at once; None when a column holds a
    null (refused column by column, with its row).  Column by column, a batch of 20 000
    columns spent more time in Python than Arrow spent parsing its text."""
    import pyarrow as pa

    try:
        tensor = batch.select(columns).to_tensor(null_to_nan=False, row_major=True)
    except pa.ArrowTypeError:  # a null
        return None
    values = np.asarray(tensor)
    return values.reshape(batch.num_rows, len(columns))


def _refuse_narrowed(
    path: Path, wide: Any, narrow: Any, first_row: int, name: str, *, asked: bool = True
) -> None:
    """Refuse a value that ``--dtype float32`` cannot hold: a non-zero one read as 0 (a
    probability of 1e-50, whose NLL is 115 nats, would be infinite) or a finite one read
    as infinity (1e39, refused as "must be finite; got inf", a value the file does not
    hold); rounding to the nearest float32 is what the option asks for.  Without it
    (``asked`` false), float32 is the dtype of the file's other class columns."""
    lost = np.flatnonzero(((narrow == 0) & (wide != 0)) | (np.isinf(narrow) & np.isfinite(wide)))
    if lost.size:
        row = int(lost[0])
        raise SourceError(
            f"{path}: the {name!r} column holds {float(wide[row])!r} in row "
            f"{first_row + row}, which float32 cannot hold ("
            f"{'--dtype float32 would read it' if asked else 'float32 reads it'} as "
            f"{float(narrow[row])!r}); "
            + (
                "the file was not written from float32 values: drop --dtype float32"
                if asked
                else "the other class columns are float32, so the predictions are read as "
                "float32: store every class column as float64"
            )
        )


def _out_of_range_suspects(
    block: Any, columns: list[str], form: str, known: list[str]
) -> list[str]:
    """The class columns of a CSV batch, not in ``known``, that hold a value float64
    may have read from text it cannot hold: an infinity (``1e400``, past float64's
    largest number), and for probabilities a zero (``1e-400``, below its smallest).
    A whole-block reduction first, so that a table without such values costs one
    pass over the block."""
    wrong = np.isinf(block)
    if form == "probs":
        wrong |= block == 0
    if not wrong.any():
        return []
    return [name for k, name in enumerate(columns) if name not in known and wrong[:, k].any()]


_EXACT_TEXT = r"^\s*[+-]?(?:(?:0+\.?0*|\.0+)(?:[eE][+-]?[0-9]+)?|(?i:inf|infinity))\s*$"
"""A CSV cell's text that is exactly 0 (``0``, ``-0``, ``0.0``, ``0e5``) or an infinity
(``inf``, ``-Infinity``): the values read as 0 or infinity that the file does hold."""


def _refuse_out_of_range(reading: _Reading, columns: list[str]) -> None:
    """Refuse a CSV cell whose number float64 cannot hold: its text is read again (the
    ``columns`` only, as text), and a cell read as 0 or an infinity whose text is not
    0 or an infinity (:data:`_EXACT_TEXT`) is named with its column, row and text.
    pyarrow reads ``1e-400`` as 0 and ``1e400`` as infinity: a probability of 0 gives
    an infinite NLL with exit 0, a number the file does not hold (its NLL is 921
    nats)."""

    if reading.stdin is not None:
        reading.stdin.rewind()
    rows = 0
    for batch in _batches(reading, text=columns):
        for name in columns:
            found = _out_of_range_cell(batch.column(name))
            if found is not None:
                row, text, value = found
                zero = value == 0
                what = "smallest" if zero else "largest"
                hint = "; store such probabilities as log-probabilities (--log-probs)"
                raise SourceError(
                    f"{reading.path}: the {name!r} column holds {text!r} in row "
                    f"{rows + row}, beyond float64's {what} number (it would be read as "
                    f"{value!r}, a value the file does not hold){hint if zero else ''}"
                )
        rows += batch.num_rows


def _out_of_range_cell(cells: Any) -> tuple[int, str, float] | None:
    """The first cell of a CSV column's text read as 0 or an infinity whose text is
    neither (:data:`_EXACT_TEXT`): its row in the batch, its text and the value read;
    None if there is none.  A one-character text (``0``, the cells of hard predictions)
    holds no such number and is passed over without being parsed."""
    import pyarrow as pa
    import pyarrow.compute as pc

    offsets = np.frombuffer(
        cells.buffers()[1], dtype=np.int32, count=len(cells) + 1, offset=cells.offset * 4
    )
    longer = np.flatnonzero(np.diff(offsets) > 1)
    if not longer.size:
        return None
    texts = pc.utf8_trim_whitespace(cells.take(pa.array(longer)))  # as the CSV reader does
    values = pc.cast(texts, pa.float64()).to_numpy(zero_copy_only=False)
    read = np.flatnonzero((values == 0) | np.isinf(values))
    if not read.size:
        return None
    exact = pc.match_substring_regex(texts.take(pa.array(read)), _EXACT_TEXT)
    wrong = np.flatnonzero(~exact.to_numpy(zero_copy_only=False))
    if not wrong.size:
        return None
    k = int(read[wrong[0]])
    return int(longer[k]), str(texts[k].as_py()), float(values[k])


def _track_distinct_integers(
    batch: Any, columns: list[str], distinct: dict[str, list[Any]] | None
) -> dict[str, list[Any]]:
    """The values so far of the integer class columns not named by ``--class-columns``
    whose values have all been different; a column drops out at its first repeat (a
    0/1 column of hard predictions in its first batch), so only row-id-like columns
    are kept."""
    import pyarrow.types as pa_types

    if distinct is None:
        distinct = {name: [] for name in columns if pa_types.is_integer(batch.column(name).type)}
    for name in list(distinct):
        values = _to_numpy(batch.column(name))
        if np.unique(values).size != values.size:
            del distinct[name]
        else:
            distinct[name].append(values)
    return distinct


def _row_id_columns(distinct: dict[str, list[Any]]) -> list[str]:
    """The class columns of integers with a different value in every row: row ids, such
    as the index ``DataFrame.to_csv`` writes as a table's first column (named when the
    index is: ``df.index.name = "id"``), far more likely than a model's output."""
    return [
        name
        for name, parts in distinct.items()
        if np.unique(values := np.concatenate(parts)).size == values.size
    ]


def _refuse_row_ids(path: Path, names: list[str], first: str) -> None:
    """Refuse default class columns of row ids (:func:`_row_id_columns`): read as a class,
    such a column adds a class whose value is the row id, and a report with exit 0 and
    wrong numbers would follow; which it is, id or class, is the user's to say."""
    if not names:
        return
    name = names[0]
    what = (
        f"the first column, {name!r}, holds integers, a different one in every row, as a "
        "pandas index written by to_csv does"
        if name == first
        else f"the column {name!r} holds integers, a different one in every row, as row ids do"
    )
    raise SourceError(
        f"{path}: {what}, and would be read as a class: pass --id-column "
        f"{shlex.quote(name)} if it identifies rows, or list the class columns (with it) "
        "with --class-columns"
    )


def read_label_column(path: Path, name: str, class_names: list[str]) -> Any:
    """The ``name`` column of the table at ``path`` (CSV, Parquet or Arrow, by suffix) as
    class ids, read as a table's label column is (``--labels FILE`` with predictions
    stored alone); string labels name the classes ``class_names``."""
    suffix = path.suffix.lower()
    kind = "parquet" if suffix in (".parquet", ".pq") else "csv" if suffix == ".csv" else "arrow"
    reading = _Reading(path, kind)
    choice = ColumnChoice(name, None, class_names, [])
    while True:
        parts, rows = [], 0
        try:
            for batch in _batches(reading):
                names = [str(column) for column in batch.schema.names]
                if name not in names:
                    raise SourceError(
                        f"{path}: no {name!r} column (columns: {', '.join(names)})"
                        f"{missing_label_hint(name, names)}"
                    )
                parts.append(_labels(reading, batch, rows, choice, None))
                rows += batch.num_rows
        except _Retyped as retyped:
            reading.again(retyped)
            continue
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)
