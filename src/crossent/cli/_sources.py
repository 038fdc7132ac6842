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
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

import crossent

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


def open_dataset(path: Path, *, form: str | None) -> Dataset:
    """Open ``path``; ``form`` is the CSV/Parquet prediction form (None: probabilities)."""
    if not path.exists():
        raise SourceError(f"{path}: no such file")
    if path.is_dir():
        raise SourceError(f"{path}: is a directory, not a file")
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: the file is empty")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            if form is not None:
                raise SourceError(
                    f"{path}: --logits/--log-probs apply to CSV and Parquet; in an .npz file "
                    "the array's name (probs, logits or log_probs) says the form"
                )
            dataset = _open_npz(path)
        elif suffix in (".csv", ".parquet", ".pq"):
            dataset = _open_table(path, form or "probs", parquet=suffix != ".csv")
        else:
            raise SourceError(
                f"{path}: unknown format {suffix or '(no extension)'!r}; use .npz, .csv or .parquet"
            )
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if dataset.n == 0:
        dataset.close()
        raise SourceError(f"{path}: there are no rows")
    return dataset


def _scratch_file() -> Any:
    """An anonymous temporary file in TMPDIR for unpacked or converted predictions.

    It has no name (POSIX unlinks it at once), so nothing is left behind however the run
    ends, SIGKILL included; the memory map keeps the data alive until it is dropped.
    """
    return tempfile.TemporaryFile(prefix="crossent-")


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
    unpacked = cleanup.enter_context(_scratch_file())
    with archive.open(member) as packed:
        shutil.copyfileobj(packed, unpacked, length=1 << 22)
    unpacked.flush()
    unpacked.seek(0)
    return _map_npy(unpacked, path, member)


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
    return np.memmap(raw, dtype=dtype, mode="r", offset=raw.tell(), shape=shape, order=order)


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


def _batches(path: Path, parquet: bool) -> Iterator[Any]:
    """pyarrow record batches of the file, streamed."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pa_csv
        import pyarrow.parquet as pa_parquet
    except ImportError as exc:
        raise SourceError(
            f"{path}: reading CSV and Parquet needs pyarrow: pip install 'crossent[cli]'"
        ) from exc
    try:
        if parquet:
            yield from pa_parquet.ParquetFile(path).iter_batches(batch_size=1 << 16)
        else:
            reader = pa_csv.open_csv(path, read_options=pa_csv.ReadOptions(block_size=1 << 24))
            yield from reader
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SourceError(f"{path}: cannot be parsed ({str(exc).splitlines()[0]})") from exc


def _open_table(path: Path, form: str, *, parquet: bool) -> Dataset:
    dataset = Dataset(None, None, _FORM_OF_FLAG[form], [], str(path))
    try:
        _convert_table(path, dataset, parquet=parquet)
    except BaseException:
        dataset.close()
        raise
    return dataset


def _convert_table(path: Path, dataset: Dataset, *, parquet: bool) -> None:
    """Stream the table's rows into a temporary float64 file mapped as ``dataset.values``."""
    import pyarrow.types as pa_types

    sink = dataset._cleanup.enter_context(_scratch_file())
    rows, label_parts = 0, []
    for batch in _batches(path, parquet):
        names = list(batch.schema.names)
        if "label" not in names:
            raise SourceError(f"{path}: no 'label' column (columns: {', '.join(names) or 'none'})")
        columns = [n for n in names if n != "label"]
        if not columns:
            raise SourceError(f"{path}: no prediction columns besides 'label'")
        if dataset.class_names and columns != dataset.class_names:
            raise SourceError(f"{path}: the columns change within the file")
        dataset.class_names = columns
        label_column = batch.column("label")
        if not pa_types.is_integer(label_column.type):
            raise SourceError(
                f"{path}: the 'label' column must hold integers (class ids); it holds "
                f"{label_column.type}"
            )
        if label_column.null_count:
            first = rows + int(np.flatnonzero(label_column.is_null().to_numpy(False))[0])
            raise SourceError(f"{path}: the 'label' column is empty in row {first}")
        for name in columns:
            if not (
                pa_types.is_floating(batch.column(name).type)
                or pa_types.is_integer(batch.column(name).type)
            ):
                raise SourceError(
                    f"{path}: column {name!r} must be numeric; it holds {batch.column(name).type}"
                )
        block = np.column_stack(
            [batch.column(n).to_numpy(zero_copy_only=False).astype(np.float64) for n in columns]
        )
        sink.write(np.ascontiguousarray(block).tobytes())
        label_parts.append(label_column.to_numpy(zero_copy_only=False).astype(np.int64))
        rows += block.shape[0]
    sink.flush()
    dataset.labels = np.concatenate(label_parts) if label_parts else np.zeros(0, np.int64)
    classes = len(dataset.class_names)
    dataset.values = (
        np.memmap(sink, dtype=np.float64, mode="r", shape=(rows, classes))
        if rows
        else np.zeros((0, max(classes, 1)))
    )
