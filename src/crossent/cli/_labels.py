"""``--labels FILE``: the labels of predictions stored alone (a ``.npy``, or a ``.pt``
holding a tensor or a dict of predictions only), and the checks every such pair of
files needs.

The labels file is a ``.npy`` of class ids; an ``.npz``, a ``.safetensors`` or a
``.pt``/``.pth`` dict whose array (tensor) named ``labels`` holds them, or which holds
that one array only (several arrays and none named ``labels`` is an error listing them,
nothing being chosen by shape or dtype: the rule of the predictions file, whose arrays'
names say what they are); a ``.pt`` holding one tensor of them; or a table (CSV,
Parquet, Arrow) whose ``--label-column`` (default ``label``) holds them, read as a
table's label column is: integers, booleans (False is class 0, True class 1) or the
names of the classes.  Predictions whose file holds its labels (an ``.npz``, a
``.safetensors``, a table, a ``.pt`` dict with ``labels`` or a ``(predictions, labels)``
pair) take no ``--labels``: two sources of labels is an error, never a choice.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import numpy as np

from ._dataset import (
    Dataset,
    SourceError,
    as_class_ids,
    binary_column,
    labels_name,
    sequence_hint,
)
from ._magic import HEAD_BYTES as _HEAD_BYTES
from ._magic import binary_format, not_csv
from ._npy import labels_shape_error, read_npy
from ._npz import read_npz_labels
from ._pt import load_pt, pt_array
from ._safetensors import read_safetensors_labels
from ._tables import read_label_column

__all__ = ["LABEL_SUFFIXES", "TABLE_SUFFIXES", "attach_labels", "check_file"]

TABLE_SUFFIXES = (".csv", ".parquet", ".pq", ".arrow", ".feather", ".ipc")
LABEL_SUFFIXES = (".npy", ".npz", ".safetensors", ".pt", ".pth", *TABLE_SUFFIXES)


def check_file(path: Path, *, pipe_hint: str = "") -> None:
    """Refuse what no format can read: a missing file, a folder, a FIFO or device (the
    readers need random access; ``pipe_hint`` is added to that message), an empty file."""
    try:
        info = os.stat(path)
    except FileNotFoundError as exc:
        raise SourceError(f"{path}: {_missing(path)}") from exc
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if stat.S_ISDIR(info.st_mode):
        raise SourceError(f"{path}: is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise SourceError(
            f"{path}: is not a regular file (a FIFO, socket or device); the formats need "
            f"random access, so save the data to a file first{pipe_hint}"
        )
    if info.st_size == 0:
        raise SourceError(f"{path}: the file is empty")


def _missing(path: Path) -> str:
    """Why ``path`` names no file: "no such file", or, for a symbolic link whose target
    does not exist (said "no such file" before, of a name ``ls`` lists), where it
    points."""
    try:
        target = os.readlink(path)
    except OSError:  # not a link (or not there at all)
        return "no such file"
    where = os.path.realpath(path)
    shown = target if where == target else f"{target}, that is {where}"
    return f"a dangling link: it points to {shown}, which does not exist"


def _read_labels(path: Path, label_column: str, class_names: list[str]) -> Any:
    """The labels in ``path``, by its suffix."""
    suffix = path.suffix.lower()
    if str(path) == "-":  # it said "got '(no extension)'"
        raise SourceError(
            "--labels -: standard input is read only as the predictions' CSV (crossent "
            "report -); give the labels' file"
        )
    if suffix not in LABEL_SUFFIXES:
        _refuse_compressed(path)
        raise SourceError(
            f"{path}: --labels reads a .npy, .npz, .safetensors, .pt/.pth or a table (.csv, "
            f".parquet, .arrow); got {suffix or '(no extension)'!r}"
        )
    check_file(path)
    try:
        if suffix in TABLE_SUFFIXES:
            return read_label_column(path, label_column, class_names)
        if suffix == ".npy":
            return read_npy(path)
        if suffix == ".npz":
            return read_npz_labels(path)
        if suffix == ".safetensors":
            return read_safetensors_labels(path)
        return _pt_labels(path)
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror or exc})") from exc


def _refuse_compressed(path: Path) -> None:
    """Refuse a compressed labels file (``labels.npy.gz``) with the command that
    decompresses it to the name it is read by (``labels.npy``), as a compressed
    predictions file is: it said "--labels reads a .npy, ...; got '.gz'".  Always to a
    file, never a pipe: standard input is the predictions' CSV only."""
    try:
        with open(path, "rb") as handle:
            found = binary_format(handle.read(_HEAD_BYTES))
    except OSError:
        return  # said by the suffix's refusal, or check_file
    if found is not None and found.command is not None:
        inner = path.with_suffix("")
        raise SourceError(not_csv(str(path), found, str(path), inner=str(inner)))


def _pt_labels(path: Path) -> Any:
    """The labels in a ``.pt``: one tensor, or a dict's tensor named ``labels`` or its
    only tensor (entries that are not tensors, such as an epoch number, are not arrays)."""
    loaded = load_pt(path)  # imports torch, or names the extra it needs
    import torch

    if isinstance(loaded, dict):
        tensors = {str(k): v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
        name = labels_name(path, list(tensors), "tensor")
        return pt_array(path, f"the labels ({name!r})", tensors[name])
    if isinstance(loaded, (tuple, list)):
        raise SourceError(
            f"{path}: holds a {type(loaded).__name__} of {len(loaded)}; --labels reads one "
            "tensor of class ids, or a dict with a tensor named 'labels'"
        )
    return pt_array(path, "the labels", loaded)


def attach_labels(
    dataset: Dataset, path: Path, labels_path: Path | None, label_column: str
) -> Dataset:
    """``dataset`` (predictions stored alone, opened from ``path``) with its labels, from
    the file itself or from ``labels_path``, after the checks of shapes and dtypes."""
    values = dataset.values
    if values.ndim not in (1, 2):
        raise SourceError(
            f"{path}: {dataset.what} must have shape (rows, classes), or (rows,) for the "
            "P(label = 1) or the log-odds of class 1 (--logits) of a binary problem; got "
            f"shape {values.shape}" + sequence_hint(tuple(values.shape), dataset.form)
        )
    if not np.issubdtype(values.dtype, np.floating):
        raise SourceError(
            f"{path}: {dataset.what} must be floating point; got dtype {values.dtype}"
        )
    if values.ndim == 1:  # P(label = 1) or the log-odds of class 1: one column
        values = dataset.values = binary_column(values, dataset.form, str(path))
    dataset.class_names = [str(k) for k in range(values.shape[1])]
    where: Path = path
    if labels_path is not None:
        if dataset.labels is not None:
            raise SourceError(
                f"{path}: holds its own labels; --labels {labels_path} would be a second "
                "source of labels (drop one)"
            )
        dataset.labels = _read_labels(labels_path, label_column, dataset.class_names)
        dataset.labels_source = str(labels_path)
        where = labels_path
    elif dataset.labels is None:
        raise SourceError(
            f"{path}: holds predictions only; give their labels with --labels FILE (a .npy, "
            ".npz, .safetensors or .pt of class ids, or a table's --label-column)"
        )
    dataset.labels = _checked_labels(dataset.labels, where, values.shape[0], path)
    return dataset


def _checked_labels(labels: Any, where: Path, rows: int, path: Path) -> Any:
    if labels.ndim != 1:
        raise labels_shape_error(where, labels.shape)
    labels = as_class_ids(labels, f"{where}: the labels")
    if labels.shape[0] != rows:
        raise SourceError(
            f"{where}: {labels.shape[0]} labels for the {rows} rows of predictions in {path}"
        )
    return labels
