"""Read an ``.npz`` file: ``labels`` and exactly one of ``probs``, ``logits``, ``log_probs``.

The predictions are ``(rows, classes)``, or ``(rows,)`` for a binary problem: ``probs``
then holds :math:`P(y = 1)` and ``logits`` the log-odds of class 1, as in
:func:`crossent.report` (the report uses the positive-class scope and says so).

The prediction member is copied out of the file when it is stored uncompressed
(:func:`._copied.copied_array`: into memory, or into a mapped scratch file when large;
a map of the user's file ended the process with SIGBUS when the file was truncated
while it was read), and unpacked to an anonymous temporary file first when it is
compressed, so memory stays bounded whatever the file's size.  Nothing is trusted
before it is checked, because the reader takes whatever bytes lie where the header
points:

* every ``.npy`` header must describe exactly the bytes its member holds (a truncated
  member would otherwise be read on into the next zip entry);
* the CRC-32 of every member is verified: by :mod:`zipfile` for what it decompresses, and
  here for a member that is stored.  That costs one sequential read of the
  member (about 0.5 GB/s with zlib), small beside the report's own passes over the data,
  and a flipped bit would otherwise give a silently wrong number;
* arrays of Python objects are refused, never unpickled; only plain numeric dtypes pass.

Every problem is a :class:`SourceError` naming the file and the member.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import struct
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np

from ._copied import copied_array
from ._dataset import (
    Dataset,
    SourceError,
    as_class_ids,
    binary_column,
    check_shape,
    labels_name,
    prediction_arrays,
    scratch_file,
    sequence_hint,
)

__all__ = ["labels_shape_hint", "npy_layout", "open_npz", "read_npz_labels", "read_small"]

_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, struct.error)
"""What :mod:`zipfile` raises for a damaged archive or member (besides ``OSError``)."""

_NPY_VERSIONS = {(1, 0), (2, 0), (3, 0)}
_CHUNK = 1 << 22


def open_npz(path: Path, form: str | None, dtype: str | None = None) -> Dataset:
    """Open an ``.npz``; the member's name says the form, so ``form`` must be None, and
    each member stores its dtype (``dtype`` is refused by the format registry)."""
    if form is not None:
        raise SourceError(
            f"{path}: in an .npz file the array's name says the form, not --logits/--log-probs "
            "(those name a table's, a .npy's or a single tensor's): save the predictions as "
            "probs, logits or log_probs, np.savez(path, logits=..., labels=...)"
        )
    try:
        archive = zipfile.ZipFile(path)
    except (*_CORRUPT, ValueError) as exc:
        raise SourceError(f"{path}: not a valid .npz file ({exc})") from exc
    with archive:
        members = _members(path, archive)
        found = [name for name in prediction_arrays() if name in members]
        if "labels" not in members:
            raise SourceError(
                f"{path}: no array named 'labels' (found: {', '.join(sorted(members)) or 'none'})"
                f"{_save_hint(members)}"
            )
        if not found:
            raise SourceError(
                f"{path}: no predictions; expected exactly one array named probs, logits or "
                f"log_probs (found: {', '.join(sorted(members))}){_save_hint(members)}"
            )
        if len(found) > 1:
            raise SourceError(
                f"{path}: two prediction arrays ({' and '.join(found)}); keep exactly one, "
                "so that the form of the predictions is unambiguous"
            )
        name = found[0]
        dataset = Dataset(None, None, name, [], str(path), what=f"`{name}`", form_named=True)
        try:
            dataset.values = _map_member(path, archive, members[name], name, dataset)
            _check_declared_rows(path, archive, members["labels"], dataset.values, name)
            dataset.labels = read_small(path, archive, members["labels"], "labels")
            _check_shapes(path, dataset, name)
        except BaseException:
            dataset.close()
            raise
    dataset.class_names = [str(k) for k in range(dataset.classes)]
    unused = [member for member in members if member not in (name, "labels")]
    if unused:  # said in the report, as a table's unused columns
        dataset.columns = {"predictions": name, "label": "labels", "ignored": unused}
    return dataset


def _save_hint(members: dict[str, zipfile.ZipInfo]) -> str:
    """How to save an archive whose arrays are not named as the report reads them: the
    names of a Hugging Face ``Trainer.predict`` output (``predictions``, ``label_ids``) or
    ``np.savez``'s positional ``arr_0``, ``arr_1`` name neither the form nor the labels."""
    if "predictions" in members or "label_ids" in members:
        example = "np.savez(path, logits=out.predictions, labels=out.label_ids)"
    else:
        example = "np.savez(path, logits=..., labels=...)"
    return f"; name the arrays when saving them: {example} (or probs=, log_probs=)"


def read_npz_labels(path: Path) -> Any:
    """The labels of ``--labels FILE.npz``: its array named ``labels``, or its only array
    (:func:`._dataset.labels_name`), read into memory with the checks of every member."""
    try:
        archive = zipfile.ZipFile(path)
    except (*_CORRUPT, ValueError) as exc:
        raise SourceError(f"{path}: not a valid .npz file ({exc})") from exc
    with archive:
        members = _members(path, archive)
        name = labels_name(path, list(members))
        return read_small(path, archive, members[name], name)


def _members(path: Path, archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """Array name -> member; like ``np.load``, a member may be named with or without
    ``.npy``, but not both ways at once."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        if info.is_dir():
            continue
        name = info.filename.removesuffix(".npy")
        if name in members:
            raise SourceError(
                f"{path}: the array {name!r} is stored twice ({members[name].filename!r} "
                f"and {info.filename!r})"
            )
        members[name] = info
    return members


def _corrupt(path: Path, name: str, exc: BaseException | str) -> SourceError:
    return SourceError(f"{path}: {_array(name, 'the array ')} is damaged ({exc})")


def _array(name: str, prefix: str = "") -> str:
    """How messages call the ``.npy`` being read: the member ``name`` of an ``.npz``, or
    (``name`` empty) a ``.npy`` file of its own."""
    return f"{prefix}{name!r}" if name else "the file"


def npy_layout(
    raw: IO[bytes], size: int, path: Path, name: str
) -> tuple[tuple[int, ...], np.dtype[Any], bool, int]:
    """Shape, dtype, Fortran order and header length of the ``.npy`` of ``size`` bytes at
    ``raw``'s position; refuses a header that does not describe exactly those bytes, and
    arrays of Python objects.  ``name`` is the ``.npz`` member's ("": a ``.npy`` file)."""
    start = raw.tell()
    try:
        version = np.lib.format.read_magic(raw)
        if version not in _NPY_VERSIONS:
            raise ValueError(f"unknown .npy format version {version}")
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran_order, dtype = read_header(raw)
    except (
        ValueError,
        SyntaxError,
        TypeError,
        EOFError,
        OverflowError,
        RecursionError,
        tokenize.TokenError,  # NumPy tokenizes the header text to read older files
    ) as exc:
        raise SourceError(f"{path}: {_array(name)} is not a valid .npy array ({exc})") from exc
    if dtype.hasobject:
        raise SourceError(
            f"{path}: {_array(name)} holds Python objects, which crossent never unpickles; "
            "save a numeric array"
        )
    if dtype.fields is not None or dtype.subdtype is not None:
        raise SourceError(
            f"{path}: {_array(name)} must be a plain numeric array; got dtype {dtype}"
        )
    if any(d < 0 for d in shape):
        raise _corrupt(path, name, f"negative shape {shape} in its header")
    check_shape(shape, dtype.itemsize, f"{path}: {_array(name)}")
    header = raw.tell() - start
    expected = math.prod(shape) * dtype.itemsize
    if size - header != expected:
        raise _corrupt(
            path,
            name,
            f"its header describes {expected} bytes of shape {shape}, the "
            f"{'member' if name else 'file'} holds "
            f"{size - header}; the file is truncated or was modified",
        )
    return shape, dtype, bool(fortran_order), header


def read_small(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> Any:
    """A member read whole into memory (the labels); zipfile checks its CRC."""
    if info.flag_bits & 0x1:  # zipfile would raise RuntimeError, asking for a password
        raise SourceError(f"{path}: the array {name!r} is encrypted")
    try:
        data = archive.read(info)
    except _CORRUPT as exc:
        raise _corrupt(path, name, exc) from exc
    shape, dtype, fortran_order, header = npy_layout(io.BytesIO(data), len(data), path, name)
    flat = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=header)
    return flat.reshape(shape, order="F" if fortran_order else "C")


def _declared_shape(
    path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str
) -> tuple[int, ...]:
    """The shape a member's ``.npy`` header declares, read from its first bytes only (the
    header is checked against the member's declared size as :func:`npy_layout` does)."""
    if info.flag_bits & 0x1:
        raise SourceError(f"{path}: the array {name!r} is encrypted")
    try:
        with archive.open(info) as member:
            return npy_layout(member, info.file_size, path, name)[0]
    except _CORRUPT as exc:
        raise _corrupt(path, name, exc) from exc


def _check_declared_rows(
    path: Path, archive: zipfile.ZipFile, labels: zipfile.ZipInfo, values: Any, name: str
) -> None:
    """The labels' declared shape against the predictions (mapped, not read), before the
    labels are read: a labels member of far more rows (a few kB of deflated zeros
    declaring gigabytes) would otherwise be read whole into memory only to be refused."""
    shape = _declared_shape(path, archive, labels, "labels")
    if len(shape) != 1:
        raise SourceError(
            f"{path}: 'labels' must be one-dimensional; got shape {shape}"
            + (sequence_hint(tuple(values.shape), name) or labels_shape_hint(shape))
        )
    if values.ndim and values.shape[0] != shape[0]:
        raise SourceError(
            f"{path}: 'labels' has {shape[0]} rows but '{name}' has {values.shape[0]}"
        )


def _map_member(
    path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, dataset: Dataset
) -> Any:
    """One member, read-only: a memory map of its scratch file if compressed, else a
    copy (:func:`._copied.copied_array`)."""
    if info.flag_bits & 0x1:
        raise SourceError(f"{path}: the array {name!r} is encrypted")
    if info.compress_type == zipfile.ZIP_STORED:
        raw = dataset._cleanup.enter_context(open(path, "rb"))  # noqa: SIM115 (closed by close())
        start = _stored_data_offset(raw, info, path, name)
        size = info.file_size
    else:
        raw = dataset._cleanup.enter_context(scratch_file())
        try:
            with archive.open(info) as packed:  # zipfile checks the CRC at the end
                shutil.copyfileobj(packed, raw, length=_CHUNK)
        except _CORRUPT as exc:
            raise _corrupt(path, name, exc) from exc
        raw.flush()
        start, size = 0, raw.tell()
    raw.seek(start)
    shape, dtype, fortran_order, header = npy_layout(raw, size, path, name)
    if info.compress_type != zipfile.ZIP_STORED:  # our scratch file: mapped in place
        if math.prod(shape) == 0:
            return np.zeros(shape, dtype=dtype)
        return np.memmap(
            raw,
            dtype=dtype,
            mode="r",
            offset=start + header,
            shape=shape,
            order="F" if fortran_order else "C",
        )
    # the user's file: copied out, as a map of it ends the process with SIGBUS if the
    # file is truncated while it is read
    return copied_array(
        raw, start + header, dtype, shape, fortran_order=fortran_order, where=str(path)
    )


def _stored_data_offset(raw: IO[bytes], info: zipfile.ZipInfo, path: Path, name: str) -> int:
    """Where an uncompressed member's bytes start, after checking its local header, that
    the file holds all of it, and its CRC-32."""
    raw.seek(info.header_offset)
    local = raw.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        raise _corrupt(path, name, "its local zip header is missing")
    name_length, extra_length = struct.unpack("<HH", local[26:30])
    start = info.header_offset + 30 + name_length + extra_length
    end = start + info.file_size
    if info.compress_size != info.file_size or end > os.fstat(raw.fileno()).st_size:
        raise _corrupt(path, name, "the file ends before the member does")
    raw.seek(start)
    crc, left = 0, info.file_size
    while left:
        chunk = raw.read(min(left, _CHUNK))
        if not chunk:
            raise _corrupt(path, name, "the file ends before the member does")
        crc, left = zlib.crc32(chunk, crc), left - len(chunk)
    if crc != info.CRC:
        raise _corrupt(path, name, f"bad CRC-32 {crc:08x}, the archive says {info.CRC:08x}")
    return start


def _check_shapes(path: Path, dataset: Dataset, name: str) -> None:
    values, labels = dataset.values, dataset.labels
    if values.ndim not in (1, 2):
        raise SourceError(
            f"{path}: '{name}' must have shape (rows, classes), or (rows,) for the binary "
            f"P(label = 1) ('probs') or log-odds of class 1 ('logits'); got shape {values.shape}"
            + sequence_hint(tuple(values.shape), name)
        )
    if labels.ndim != 1:
        raise SourceError(
            f"{path}: 'labels' must be one-dimensional; got shape {labels.shape}"
            + labels_shape_hint(labels.shape)
        )
    if labels.shape[0] != values.shape[0]:
        raise SourceError(
            f"{path}: 'labels' has {labels.shape[0]} rows but '{name}' has {values.shape[0]}"
        )
    dataset.labels = as_class_ids(labels, f"{path}: 'labels'")
    if not np.issubdtype(values.dtype, np.floating):
        raise SourceError(f"{path}: '{name}' must be floating point; got dtype {values.dtype}")
    if values.ndim == 1:  # a binary problem's one column
        dataset.values = binary_column(values, name, str(path))


def labels_shape_hint(shape: tuple[int, ...]) -> str:
    """The fix of labels of ``shape`` that are not one class id a row, where the shape
    says it, to follow "must be one-dimensional; got shape ...": a column ``(rows, 1)`` is
    raveled; ``(rows, classes)`` is most often one-hot rows, whose class ids are their
    argmax (soft labels are not class ids).  The message named the shape only, and
    one-hot labels, as Keras and many scripts save them, were left to be recognised."""
    if len(shape) == 2 and shape[1] == 1:
        return ": save labels.reshape(-1)"
    if len(shape) == 2:
        return (
            ": if each row is one-hot, save its class ids, labels.argmax(axis=1); soft "
            "labels (a distribution a row) are not class ids, and the report scores class ids"
        )
    return ""
