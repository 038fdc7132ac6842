"""Read predictions and labels from ``.npz``, ``.csv`` or ``.parquet`` without loading them whole.

The prediction matrix becomes a read-only ``numpy.memmap``: an uncompressed ``.npz``
member is mapped in place, a compressed one is unpacked to a temporary ``.npy`` first,
and CSV and Parquet files are converted batch by batch (pyarrow's streaming readers).
The library then reads the map in blocks, so memory stays bounded whatever the file's
size.  The labels (one integer per row) are held in memory.

The form of the predictions is always named by the caller; nothing here looks at the
values.  Every problem with a file is a :class:`SourceError` naming the file.
"""

from __future__ import annotations

import contextlib
import shutil
import struct
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

import crossent

from ._columns import TableColumns, choose_columns

__all__ = ["PREDICTION_ARRAYS", "Dataset", "SourceError", "open_dataset"]

PREDICTION_ARRAYS = ("probs", "logits", "log_probs")
_FORM_OF_FLAG = {"probs": "probs", "logits": "logits", "log_probs": "log_probs"}


class SourceError(crossent.InputError):
    """A file that cannot be read as predictions and labels."""


@dataclass
class Dataset:
    """Predictions ``(n, classes)`` in a named form, integer labels, and where they came from."""

    values: Any
    labels: Any
    form: str
    class_names: list[str]
    source: str
    builtin: bool = False
    ids: Any = None
    columns: dict[str, Any] | None = None
    _cleanup: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)

    @property
    def n(self) -> int:
        return int(self.labels.shape[0])

    @property
    def classes(self) -> int:
        return int(self.values.shape[1])

    def close(self) -> None:
        """Remove temporary files."""
        self._cleanup.close()


_TABLE_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_ARROW_SUFFIXES = (".arrow", ".feather", ".ipc")
STDIN = Path("-")
"""``-`` on the command line: a CSV table on standard input."""


def open_dataset(path: Path, *, form: str | None, columns: TableColumns | None = None) -> Dataset:
    """Open ``path``; ``form`` is a table's prediction form (None: probabilities) and
    ``columns`` its column options (label, id, classes)."""
    columns = columns or TableColumns()
    if path == STDIN:
        return _checked(_open_table(path, form or "probs", kind="stdin", columns=columns), path)
    if not path.exists():
        raise SourceError(f"{path}: no such file")
    if path.is_dir():
        raise SourceError(f"{path}: is a directory, not a file")
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: the file is empty")
    suffix = path.suffix.lower()
    try:
        if suffix in (".npz", ".safetensors"):
            if form is not None:
                raise SourceError(
                    f"{path}: --logits/--log-probs apply to tables; in an {suffix} file "
                    "the array's name (probs, logits or log_probs) says the form"
                )
            if suffix == ".npz":
                dataset = _open_npz(path)
            else:
                from ._safetensors import open_safetensors

                dataset = open_safetensors(path)
        elif suffix in _TABLE_SUFFIXES or suffix in _ARROW_SUFFIXES:
            kind = _TABLE_SUFFIXES.get(suffix, "arrow")
            dataset = _open_table(path, form or "probs", kind=kind, columns=columns)
        else:
            raise SourceError(
                f"{path}: unknown format {suffix or '(no extension)'!r}; use .npz, .safetensors, "
                ".csv, .parquet, .arrow/.feather, or - for a CSV on standard input"
            )
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    return _checked(dataset, path)


def _checked(dataset: Dataset, path: Path) -> Dataset:
    if dataset.n == 0:
        dataset.close()
        raise SourceError(f"{path}: there are no rows")
    return dataset


# ------------------------------------------------------------------------------- npz


def _open_npz(path: Path) -> Dataset:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise SourceError(f"{path}: not a valid .npz file ({exc})") from exc
    with archive:
        names = {n.removesuffix(".npy") for n in archive.namelist()}
        found = [name for name in PREDICTION_ARRAYS if name in names]
        if "labels" not in names:
            raise SourceError(
                f"{path}: no array named 'labels' (found: {', '.join(sorted(names)) or 'none'})"
            )
        if not found:
            raise SourceError(
                f"{path}: no predictions; expected exactly one array named probs, logits or "
                f"log_probs (found: {', '.join(sorted(names))})"
            )
        if len(found) > 1:
            raise SourceError(
                f"{path}: two prediction arrays ({' and '.join(found)}); keep exactly one, "
                "so that the form of the predictions is unambiguous"
            )
        with archive.open("labels.npy") as member:
            labels = np.lib.format.read_array(member, allow_pickle=False)
        dataset = Dataset(None, labels, found[0], [], str(path))
        try:
            dataset.values = _map_member(path, archive, found[0] + ".npy", dataset._cleanup)
            _check_shapes(path, dataset, found[0])
        except BaseException:
            dataset.close()
            raise
    dataset.class_names = [str(k) for k in range(dataset.classes)]
    return dataset


def _map_member(
    path: Path, archive: zipfile.ZipFile, member: str, cleanup: contextlib.ExitStack
) -> Any:
    """A read-only memory map of one ``.npy`` member (unpacked to a temp file if compressed)."""
    info = archive.getinfo(member)
    if info.compress_type == zipfile.ZIP_STORED:
        with open(path, "rb") as raw:
            raw.seek(info.header_offset)
            local = raw.read(30)
            name_length, extra_length = struct.unpack("<HH", local[26:30])
            raw.seek(info.header_offset + 30 + name_length + extra_length)
            return _map_npy(raw, path, member)
    folder = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="crossent-")))
    target = folder / "values.npy"
    with archive.open(member) as packed, open(target, "wb") as unpacked:
        shutil.copyfileobj(packed, unpacked, length=1 << 22)
    with open(target, "rb") as raw:
        return _map_npy(raw, target, member)


def _map_npy(raw: Any, path: Path, member: str) -> Any:
    try:
        version = np.lib.format.read_magic(raw)
        header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran_order, dtype = header(raw)
    except ValueError as exc:
        raise SourceError(f"{path}: {member} is not a valid .npy array ({exc})") from exc
    if dtype.hasobject:
        raise SourceError(f"{path}: {member} holds Python objects; save a numeric array")
    order: Literal["C", "F"] = "F" if fortran_order else "C"
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=raw.tell(), shape=shape, order=order)


def _check_shapes(path: Path, dataset: Dataset, name: str) -> None:
    values, labels = dataset.values, dataset.labels
    if values.ndim != 2:
        raise SourceError(
            f"{path}: '{name}' must be two-dimensional (rows, classes); got shape {values.shape}"
        )
    if labels.ndim != 1:
        raise SourceError(f"{path}: 'labels' must be one-dimensional; got shape {labels.shape}")
    if labels.shape[0] != values.shape[0]:
        raise SourceError(
            f"{path}: 'labels' has {labels.shape[0]} rows but '{name}' has {values.shape[0]}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise SourceError(
            f"{path}: 'labels' must be integers (class ids); got dtype {labels.dtype}"
        )
    if not np.issubdtype(values.dtype, np.floating):
        raise SourceError(f"{path}: '{name}' must be floating point; got dtype {values.dtype}")


# ------------------------------------------------------------------------ csv, parquet


def _batches(path: Path, kind: str) -> Iterator[Any]:
    """pyarrow record batches of the table, streamed."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pa_csv
        import pyarrow.ipc as pa_ipc
        import pyarrow.parquet as pa_parquet
    except ImportError as exc:
        raise SourceError(
            f"{path}: reading tables needs pyarrow: pip install 'crossent[cli]'"
        ) from exc
    try:
        if kind == "parquet":
            yield from pa_parquet.ParquetFile(path).iter_batches(batch_size=1 << 16)
        elif kind == "arrow":
            yield from _arrow_batches(path, pa_ipc)
        else:
            source: Any = sys.stdin.buffer if kind == "stdin" else path
            reader = pa_csv.open_csv(source, read_options=pa_csv.ReadOptions(block_size=1 << 24))
            yield from reader
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SourceError(f"{path}: cannot be parsed ({str(exc).splitlines()[0]})") from exc


def _arrow_batches(path: Path, pa_ipc: Any) -> Iterator[Any]:
    """Record batches of an Arrow IPC file (Feather v2), or of an IPC stream."""
    import pyarrow as pa

    try:
        reader = pa_ipc.open_file(path)
    except pa.ArrowInvalid:
        with pa_ipc.open_stream(path) as stream:
            yield from stream
        return
    for index in range(reader.num_record_batches):
        yield reader.get_batch(index)


def _open_table(path: Path, form: str, *, kind: str, columns: TableColumns) -> Dataset:
    source = "standard input (CSV)" if kind == "stdin" else str(path)
    dataset = Dataset(None, None, _FORM_OF_FLAG[form], [], source)
    try:
        _convert_table(path, dataset, kind=kind, options=columns)
    except BaseException:
        dataset.close()
        raise
    return dataset


def _convert_table(path: Path, dataset: Dataset, *, kind: str, options: TableColumns) -> None:
    """Stream the table's rows into a temporary float64 file mapped as ``dataset.values``."""
    import pyarrow.types as pa_types

    where = dataset.source
    folder = Path(dataset._cleanup.enter_context(tempfile.TemporaryDirectory(prefix="crossent-")))
    rows, label_parts, id_parts = 0, [], []
    chosen = None
    with open(folder / "values.bin", "wb") as sink:
        for batch in _batches(path, kind):
            names = [str(name) for name in batch.schema.names]
            numeric = {
                name: pa_types.is_floating(batch.column(name).type)
                or pa_types.is_integer(batch.column(name).type)
                for name in names
            }
            choice, problem = choose_columns(names, numeric, options, where)
            if choice is None:
                raise SourceError(problem)
            if chosen is not None and choice != chosen:
                raise SourceError(f"{where}: the columns change within the file")
            chosen = choice
            label_column = batch.column(choice.label)
            if not pa_types.is_integer(label_column.type):
                raise SourceError(
                    f"{where}: the {choice.label!r} column must hold integers (class ids); it "
                    f"holds {label_column.type}"
                )
            if label_column.null_count:
                first = rows + int(np.flatnonzero(label_column.is_null().to_numpy(False))[0])
                raise SourceError(f"{where}: the {choice.label!r} column is empty in row {first}")
            block = np.column_stack(
                [
                    batch.column(n).to_numpy(zero_copy_only=False).astype(np.float64)
                    for n in choice.classes
                ]
            )
            sink.write(np.ascontiguousarray(block).tobytes())
            label_parts.append(label_column.to_numpy(zero_copy_only=False).astype(np.int64))
            if choice.id is not None:
                id_parts.append(batch.column(choice.id).to_numpy(zero_copy_only=False))
            rows += block.shape[0]
    if chosen is None:
        raise SourceError(f"{where}: there are no rows")
    dataset.class_names = list(chosen.classes)
    dataset.columns = chosen.record()
    dataset.labels = np.concatenate(label_parts) if label_parts else np.zeros(0, np.int64)
    if chosen.id is not None:
        dataset.ids = np.concatenate(id_parts)
    classes = len(dataset.class_names)
    dataset.values = (
        np.memmap(folder / "values.bin", dtype=np.float64, mode="r", shape=(rows, classes))
        if rows
        else np.zeros((0, max(classes, 1)))
    )
