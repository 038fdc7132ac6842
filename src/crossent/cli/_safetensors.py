"""Read predictions from a ``.safetensors`` file: arrays named as in an ``.npz``.

The format (huggingface/safetensors) is an 8-byte little-endian header length ``N``, a
JSON header of ``N`` bytes mapping each tensor's name to its ``dtype``, ``shape`` and
``data_offsets`` (begin, end, relative to the end of the header), then the raw
little-endian data.  It holds no code, so reading it never unpickles anything; the
header is parsed here with :mod:`json` (no ``safetensors`` package needed), every field
is checked against the file's size, and the prediction matrix is memory-mapped in place.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ._dataset import Dataset, SourceError, binary_column, labels_name, prediction_arrays

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
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"{path}: not a safetensors file (header is not JSON: {exc})") from exc
    if not isinstance(header, dict):
        raise SourceError(f"{path}: not a safetensors file (header is not a JSON object)")
    header.pop("__metadata__", None)
    return header, 8 + length


def _tensor(path: Path, name: str, entry: Any, start: int, size: int) -> Any:
    """A read-only map of one tensor (bfloat16 widened to float32 in memory)."""
    try:
        kind = entry["dtype"]
        shape = tuple(int(d) for d in entry["shape"])
        begin, end = (int(v) for v in entry["data_offsets"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceError(f"{path}: tensor {name!r} has a malformed header entry") from exc
    if kind not in _DTYPES:
        raise SourceError(f"{path}: tensor {name!r} has unsupported dtype {kind!r}")
    dtype = _DTYPES[kind]
    count = int(np.prod(shape)) if shape else 1
    if any(d < 0 for d in shape) or not 0 <= begin <= end or end - begin != count * dtype.itemsize:
        raise SourceError(
            f"{path}: tensor {name!r}: offsets [{begin}, {end}) do not hold shape {shape} of {kind}"
        )
    if start + end > size:
        raise SourceError(f"{path}: tensor {name!r} runs past the end of the file (truncated?)")
    if count == 0:
        return np.zeros(shape, dtype=np.float32 if kind == "BF16" else dtype)
    array = np.memmap(path, dtype=dtype, mode="r", offset=start + begin, shape=shape)
    if kind == "BF16":
        return (np.asarray(array, dtype=np.uint32) << 16).view(np.float32)
    return array


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
        )
    if labels.ndim != 1 or labels.shape[0] != values.shape[0]:
        raise SourceError(
            f"{path}: 'labels' must have one entry per row of '{found[0]}'; got shapes "
            f"{labels.shape} and {values.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise SourceError(f"{path}: 'labels' must be integers; got {labels.dtype}")
    if not np.issubdtype(values.dtype, np.floating):
        raise SourceError(f"{path}: '{found[0]}' must be floating point; got {values.dtype}")
    if values.ndim == 1:  # P(label = 1) or the log-odds of class 1: one column
        values = binary_column(values, found[0], str(path))
    return Dataset(values, labels, found[0], [str(k) for k in range(values.shape[1])], str(path))
