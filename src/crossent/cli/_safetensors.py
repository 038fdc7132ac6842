"""Read predictions from a ``.safetensors`` file: arrays named as in an ``.npz``.

The format (huggingface/safetensors) is an 8-byte little-endian header length ``N``, a
JSON header of ``N`` bytes mapping each tensor's name to its ``dtype``, ``shape`` and
``data_offsets`` (begin, end, relative to the end of the header), then the raw
little-endian data.  It holds no code, so reading it never unpickles anything; the
header is parsed here with :mod:`json` (no ``safetensors`` package needed) and checked as
the reference implementation checks it (its ``validate``): every shape is a list of
non-negative integers, every tensor's ``[begin, end)`` holds exactly its shape's bytes
(products in Python integers, which do not overflow), and the tensors' byte ranges,
sorted, tile the data from its start to the end of the file with no gap and no overlap.
The prediction matrix is copied out of the file (:func:`._copied.copied_array`), not
mapped in place: a map of a file truncated while it is read ends the process with SIGBUS.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

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
    sequence_hint,
)
from ._npz import labels_shape_hint

__all__ = ["open_safetensors", "read_safetensors_labels"]

_MAX_HEADER = 100 * 1024 * 1024
"""The format's own limit on the header (100 MB)."""

_DTYPES: dict[str, np.dtype[Any]] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "U16": np.dtype("<u2"),
    "U32": np.dtype("<u4"),
    "U64": np.dtype("<u8"),
    "BOOL": np.dtype("u1"),  # one byte, 0 or 1 (checked), read as booleans below
    "BF16": np.dtype("<u2"),  # read as bits, widened to float32 below
}


def _header(path: Path, size: int) -> tuple[dict[str, Any], int]:
    with open(path, "rb") as raw:
        prefix = raw.read(8)
        if len(prefix) < 8:
            raise SourceError(f"{path}: not a safetensors file (shorter than 8 bytes)")
        (length,) = struct.unpack("<Q", prefix)
        if length > _MAX_HEADER or 8 + length > size:
            raise SourceError(
                f"{path}: not a safetensors file (header length {length} does not fit the "
                f"file of {size} bytes)"
            )
        text = raw.read(length)
    try:
        header = json.loads(text.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError: not JSON, a key twice (_unique_keys), or an integer of more digits
        # than Python converts; RecursionError: arrays nested past the parser's depth
        what = "names a tensor twice" if isinstance(exc, _KeyTwiceError) else "is not JSON"
        raise SourceError(
            f"{path}: not a safetensors file (header {what}: {str(exc)[:200]})"
        ) from exc
    if not isinstance(header, dict):
        raise SourceError(f"{path}: not a safetensors file (header is not a JSON object)")
    header.pop("__metadata__", None)
    _check_layout(path, header, size - 8 - length)
    return header, 8 + length


class _KeyTwiceError(ValueError):
    """A key given twice in the header."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different: a header naming one tensor twice says
    two things of it, and :mod:`json` would keep the last one silently."""
    header = dict(pairs)
    if len(header) != len(pairs):
        twice = next(key for k, (key, _) in enumerate(pairs) if key in dict(pairs[:k]))
        raise _KeyTwiceError(f"the key {twice!r} is given twice")
    return header


def _is_count(value: Any) -> bool:
    """A JSON integer >= 0 (not a float such as 4.7 or 4.0, a string, or a boolean)."""
    return type(value) is int and value >= 0


def _entry(path: Path, name: str, entry: Any) -> tuple[str, tuple[int, ...], int, int]:
    """A tensor's dtype, shape and byte range, each checked alone."""
    try:
        kind, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    except (KeyError, TypeError) as exc:
        raise SourceError(f"{path}: tensor {name!r} has a malformed header entry") from exc
    if not isinstance(shape, list) or not all(map(_is_count, shape)):
        raise SourceError(
            f"{path}: tensor {name!r}: the shape must be a list of integers >= 0; got {shape!r}"
        )
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(map(_is_count, offsets)):
        raise SourceError(
            f"{path}: tensor {name!r}: data_offsets must be two integers >= 0; got {offsets!r}"
        )
    if not isinstance(kind, str) or kind not in _DTYPES:
        raise SourceError(f"{path}: tensor {name!r} has unsupported dtype {kind!r}")
    check_shape(tuple(shape), _DTYPES[kind].itemsize, f"{path}: tensor {name!r}")
    begin, end = offsets
    if not begin <= end or end - begin != math.prod(shape) * _DTYPES[kind].itemsize:
        raise SourceError(
            f"{path}: tensor {name!r}: offsets [{begin}, {end}) do not hold shape "
            f"{tuple(shape)} of {kind}"
        )
    return kind, tuple(shape), begin, end


def _check_layout(path: Path, header: dict[str, Any], data: int) -> None:
    """Every entry valid, and the byte ranges, sorted, tile ``[0, data)`` exactly (the
    format's rule: no gap, no overlap, nothing after the last tensor)."""
    ranges = sorted(
        (_entry(path, str(name), entry)[2:], str(name)) for name, entry in header.items()
    )
    covered = 0
    for (begin, end), name in ranges:
        if begin != covered:
            what = (
                "overlap the tensor before them" if begin < covered else "leave a gap before them"
            )
            raise SourceError(
                f"{path}: tensor {name!r}: its bytes [{begin}, {end}) {what} (the data ends "
                f"at {covered} there); not a valid safetensors file"
            )
        if end > data:
            raise SourceError(f"{path}: tensor {name!r} runs past the end of the file (truncated?)")
        covered = end
    if covered != data:
        raise SourceError(
            f"{path}: {data - covered} bytes follow the last tensor's data, which the format "
            "does not allow; the file was modified"
        )


def _tensor(path: Path, name: str, entry: Any, start: int, size: int) -> Any:
    """One tensor, read-only (bfloat16 widened to float32, booleans read into
    memory after checking that every byte is 0 or 1)."""
    kind, shape, begin, end = _entry(path, name, entry)
    dtype = _DTYPES[kind]
    if start + end > size:  # checked with the layout already; kept for direct callers
        raise SourceError(f"{path}: tensor {name!r} runs past the end of the file (truncated?)")
    if math.prod(shape) == 0:
        return np.zeros(shape, dtype=_WIDENED.get(kind, dtype))
    with open(path, "rb") as raw:  # copied, not mapped: a truncated map ends in SIGBUS
        array = copied_array(raw, start + begin, dtype, tuple(shape), where=str(path))
    if kind == "BF16":
        return (np.asarray(array, dtype=np.uint32) << 16).view(np.float32)
    if kind == "BOOL":
        if np.max(array) > 1:
            raise SourceError(
                f"{path}: tensor {name!r} of dtype BOOL holds a byte other than 0 and 1"
            )
        return np.array(array).view(np.bool_)
    return array


_WIDENED = {"BF16": np.dtype(np.float32), "BOOL": np.dtype(np.bool_)}
"""The dtype a tensor of these safetensors dtypes is read as."""


def read_safetensors_labels(path: Path) -> Any:
    """The labels of ``--labels FILE.safetensors``: its tensor named ``labels``, or its
    only tensor (:func:`._dataset.labels_name`), read into memory."""
    size = path.stat().st_size
    header, start = _header(path, size)
    name = labels_name(path, [str(key) for key in header], "tensor")
    return np.array(_tensor(path, name, header[name], start, size))


def open_safetensors(path: Path, form: str | None, dtype: str | None = None) -> Dataset:
    """``labels`` and exactly one of ``probs``, ``logits``, ``log_probs`` (the tensor's name
    says the form, so ``form`` must be None; each tensor stores its dtype)."""
    if form is not None:
        raise SourceError(
            f"{path}: --logits/--log-probs apply to tables; in a .safetensors file the "
            "tensor's name (probs, logits or log_probs) says the form"
        )
    size = path.stat().st_size
    header, start = _header(path, size)
    names = set(header)
    found = [name for name in prediction_arrays() if name in names]
    if "labels" not in names:
        raise SourceError(
            f"{path}: no tensor named 'labels' (found: {', '.join(sorted(names)) or 'none'})"
        )
    if len(found) != 1:
        raise SourceError(
            f"{path}: expected exactly one tensor named probs, logits or log_probs (found: "
            f"{', '.join(sorted(names))})"
        )
    labels = np.asarray(_tensor(path, "labels", header["labels"], start, size))
    values = _tensor(path, found[0], header[found[0]], start, size)
    if values.ndim not in (1, 2):
        raise SourceError(
            f"{path}: '{found[0]}' must have shape (rows, classes) or (rows,); got {values.shape}"
            + sequence_hint(tuple(values.shape), found[0])
        )
    if labels.ndim != 1 or labels.shape[0] != values.shape[0]:
        raise SourceError(
            f"{path}: 'labels' must have one entry per row of '{found[0]}'; got shapes "
            f"{labels.shape} and {values.shape}"
            + (labels_shape_hint(labels.shape) if labels.ndim != 1 else "")
        )
    labels = as_class_ids(labels, f"{path}: 'labels'")
    if not np.issubdtype(values.dtype, np.floating):
        raise SourceError(f"{path}: '{found[0]}' must be floating point; got {values.dtype}")
    if values.ndim == 1:  # P(label = 1) or the log-odds of class 1: one column
        values = binary_column(values, found[0], str(path))
    dataset = Dataset(values, labels, found[0], [str(k) for k in range(values.shape[1])], str(path))
    dataset.form_named = True
    dataset.bfloat16 = header[found[0]]["dtype"] == "BF16"  # widened: see build_report
    unused = [name for name in header if name not in (found[0], "labels")]
    if unused:  # said in the report, as a table's unused columns
        dataset.columns = {"predictions": found[0], "label": "labels", "ignored": unused}
    return dataset
