"""Predictions and labels from NumPy, PyTorch, pandas (or anything NumPy can read) on the host.

NumPy arrays and memory maps are used as they are (never copied); tensors are detached
and copied to the host (float16 as float16, bfloat16, which NumPy lacks, as float32, a
JAX bfloat16 array too: its values are checked in bfloat16 first, see
:func:`bfloat16_tensor`); a meta tensor is refused; a pandas DataFrame gives its
columns as class names.  No optional library is imported here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._class_columns import ambiguous_integer_labels
from .._hints import reads_as_number
from .._xp import sequence_array
from ..calibration._inputs import check_same_rows
from ..errors import InputError, InputTypeError

__all__ = [
    "bfloat16_tensor",
    "check_aligned",
    "host_array",
    "host_labels",
    "labels_by_name",
    "sequence_shape_hint",
]


def host_array(x: Any, *, name: str) -> tuple[Any, list[str] | None]:
    """``x`` as a NumPy array (or memory map) and, for a DataFrame, its column names."""
    if isinstance(x, np.ndarray):
        return x, None
    module = type(x).__module__.split(".")[0]
    if module == "pandas":
        if hasattr(x, "columns"):
            return _frame(x, name=name), [str(c) for c in x.columns]
        return _series(x), None
    if module == "torch":
        if x.device.type == "meta":
            raise InputTypeError(
                f"`{name}` is a meta tensor, which has a shape but no values to evaluate"
            )
        tensor = x.detach()
        if bfloat16_tensor(tensor) is not None:
            tensor = tensor.float()  # exact; NumPy has no bfloat16 (float16 it has)
        return tensor.cpu().numpy(), None
    if isinstance(x, list | tuple):
        return sequence_array(x, name=name), None
    try:
        host = np.asarray(x)
    except Exception:
        try:
            return np.from_dlpack(x), None
        except Exception as exc:
            raise InputError(
                f"`{name}` could not be read as a host array ({type(x).__name__}); move it to "
                "the CPU first"
            ) from exc
    if bfloat16_tensor(x) is not None:  # a JAX bfloat16 array: ml_dtypes' on the host
        return host.astype(np.float32), None  # exact; NumPy cannot compute in bfloat16
    return host, None


def bfloat16_tensor(x: Any) -> Any:
    """``x`` (detached), where it is a PyTorch or JAX bfloat16 array; None otherwise (a
    NumPy array of ``ml_dtypes``' bfloat16 too: refused, as the evaluation functions do).

    :func:`host_array` widens such an array to float32, whose tolerance is tighter than
    bfloat16's: its values are checked in bfloat16 before the widening, as the evaluation
    functions check them (the caller's dtype sets the tolerance)."""
    module = type(x).__module__.split(".")[0]
    if module == "jax" or module == "jaxlib":
        return x if getattr(x.dtype, "name", None) == "bfloat16" else None
    if module != "torch" or not hasattr(x, "detach"):
        return None
    return x.detach() if str(x.dtype) == "torch.bfloat16" else None


def _frame(frame: Any, *, name: str) -> Any:
    """A DataFrame's values; every column must be numeric (a pandas extension dtype such
    as ``Float64`` included, its missing values as NaN, which validation refuses)."""
    numeric = [getattr(dtype, "kind", "O") in _NUMERIC for dtype in frame.dtypes]
    bad = [
        f"{str(column)!r} ({dtype})"
        for (column, dtype), ok in zip(frame.dtypes.items(), numeric, strict=True)
        if not ok
    ]
    if bad:
        raise InputError(
            f"`{name}` must hold one numeric column per class; column {', '.join(bad)} "
            f"is not numeric: select the class columns{_selection(frame, numeric)}"
        )
    if all(isinstance(dtype, np.dtype) for dtype in frame.dtypes):
        return frame.to_numpy()
    return frame.to_numpy(dtype=np.float64, na_value=np.nan)


def _selection(frame: Any, numeric: list[bool]) -> str:
    """An example selection of ``frame``'s class columns: its numeric columns, the labels
    passed apart (``report(frame[[...]], frame['label'])``), where one column is left."""
    columns = list(frame.columns)
    keep = [repr(c) for c, ok in zip(columns, numeric, strict=True) if ok]
    rest = [repr(c) for c, ok in zip(columns, numeric, strict=True) if not ok]
    if not keep:
        return ""
    shown = ", ".join(keep if len(keep) <= 4 else [*keep[:3], "...", keep[-1]])
    if len(rest) == 1:
        return f" and pass the labels apart: report(frame[[{shown}]], frame[{rest[0]}])"
    return f", e.g. frame[[{shown}]]"


def _series(series: Any) -> Any:
    """A Series' values: a nullable integer or float Series as a NumPy integer or float
    array (missing values as NaN, which the checks refuse)."""
    dtype = series.dtype
    if isinstance(dtype, np.dtype):
        return series.to_numpy()
    kind = getattr(dtype, "kind", "O")
    if kind in "iu" and not series.isna().any():
        return series.to_numpy(dtype=np.int64)
    if kind in _NUMERIC:
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    return series.to_numpy()


_NUMERIC = "fiu"
"""NumPy dtype kinds of numeric columns (pandas extension dtypes have a ``kind`` too)."""


def check_aligned(predictions: Any, labels: Any) -> None:
    """Refuse pandas predictions and labels that would be paired by position by mistake:
    row indexes that differ (a shuffled or filtered Series), or a DataFrame whose class
    columns are named by integers other than ``0..K-1`` in order
    (``_class_columns.ambiguous_integer_labels``: ``columns=clf.classes_`` of the
    labels 1, 2, 3), beside which a label could be a column's name or its position."""
    columns = getattr(predictions, "columns", None)
    if type(predictions).__module__.split(".")[0] == "pandas" and columns is not None:
        names = [str(c) for c in columns]
        if ambiguous_integer_labels(names):
            shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            raise InputError(
                f"`predictions` is a DataFrame whose columns are named by integers ({shown}), "
                "not 0..K-1 in order: a label could be a column's name or its position. "
                "Pass `frame.to_numpy()` with labels that are positions (names to positions: "
                "`frame.columns.get_indexer(labels)`) and `class_names=`, or name the "
                "columns 0..K-1"
            )
    check_same_rows(predictions, labels, names=("predictions", "labels"))


def host_labels(labels: Any) -> Any:
    """The labels as a NumPy array (their dtype is checked by the evaluation functions)."""
    array, _ = host_array(labels, name="labels")
    if array.ndim != 1:
        raise InputError(f"`labels` must be one-dimensional; got shape {tuple(array.shape)}")
    return array


def labels_by_name(labels: Any, names: list[str] | None, columns: list[str] | None = None) -> Any:
    """String labels as the positions of the classes they name; other labels unchanged
    (their dtype is checked by the evaluation functions).

    ``names`` are the class names the caller gave (``class_names=``, e.g. scikit-learn's
    ``clf.classes_``, or a DataFrame's columns), None where it gave none: then string
    labels are refused, saying to pass them, for the positions ``"0"``, ``"1"``, ... are
    not names (labels that all read as numbers are left to the label check, which says how
    to cast them).  A label naming no class is an error naming its row and the classes
    (``crossent report``'s label column of strings is read the same way).  ``columns``,
    a DataFrame's column names, must then be ``names`` in order: ``class_names`` that
    order the columns otherwise would read each label as another column.
    """
    if not isinstance(labels, np.ndarray) or labels.dtype.kind not in "UO" or labels.size == 0:
        return labels
    entries = labels.tolist()
    if not all(isinstance(entry, str) for entry in entries):
        return labels  # numbers or missing values held as objects: the label check's message
    if names is None:
        if all(reads_as_number(entry) for entry in entries):
            return labels  # numbers written as text: the label check says how to cast them
        raise InputTypeError(
            f"`labels` are strings (row 0 is {entries[0]!r}); pass the class names in the "
            "predictions' column order, class_names=clf.classes_ for scikit-learn, and "
            "each label is read as the class it names"
        )
    if columns and list(columns) != list(names):
        raise InputError(
            f"`class_names` {list(names)} are not the columns of `predictions` "
            f"{list(columns)} in order, and string labels are read as names: leave "
            "class_names out (the columns name the classes), or pass "
            "frame[class_names] to put the columns in that order"
        )
    position = {name: k for k, name in enumerate(names)}
    ids = np.empty(len(entries), dtype=np.intp)
    for row, entry in enumerate(entries):
        k = position.get(entry)
        if k is None:
            shown = ", ".join(map(repr, names[:8])) + (", ..." if len(names) > 8 else "")
            raise InputError(
                f"`labels` row {row} is {entry!r}, which names no class (class_names: {shown})"
            )
        ids[row] = k
    return ids


def sequence_shape_hint(predictions: Any, labels: Any) -> str:
    """For predictions ``(batch, time, classes)`` beside labels ``(batch, time)`` (a
    sequence model's outputs), how to pass them as rows; else an empty string."""
    shape, label_shape = getattr(predictions, "shape", None), getattr(labels, "shape", None)
    if shape is None or label_shape is None:  # (lists: their rows may be ragged)
        return ""
    shape, label_shape = tuple(shape), tuple(label_shape)
    if len(shape) < 3 or shape[:-1] != label_shape:
        return ""
    return (
        f": a sequence model's outputs are one row per token, predictions.reshape(-1, "
        f"{shape[-1]}) and labels.reshape(-1) (a causal LM shifted first, logits[:, :-1] "
        "beside labels[:, 1:], and positions labelled -100 dropped: keep = labels != -100)"
    )
