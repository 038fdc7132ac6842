"""Read a ``.npy`` file: one array, the predictions (or, given with ``--labels``, the labels).

A ``.npy`` holds one array and no name, so the caller names what it holds: the form of
the predictions with ``--logits`` / ``--log-probs`` (probabilities otherwise, as for a
table) and the labels with ``--labels FILE``.  The file is read as ``np.load(path,
mmap_mode="r", allow_pickle=False)`` would read it, with the checks of an ``.npz``
member (:func:`._npz.npy_layout`): the header must describe exactly the bytes that
follow it (a truncated file would otherwise be refused only by the memory map, and a
longer one read silently), and an array of Python objects is refused, never unpickled.
The array is copied out of the file, not mapped in place (a file truncated while it
was mapped ended the process with SIGBUS): into memory, or for a large one into a
mapped scratch file, so the file need not fit in memory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._copied import copied_array
from ._dataset import Dataset, SourceError
from ._npz import labels_shape_hint, npy_layout

__all__ = ["labels_shape_error", "map_npy", "open_npy", "read_npy"]


def map_npy(path: Path, *, in_memory: bool = False) -> Any:
    """The read-only array of the ``.npy`` at ``path``, copied out of the file
    (:func:`._copied.copied_array`: never mapped in place, so a file truncated while
    it is read is an error, not SIGBUS); ``in_memory`` for labels."""
    with open(path, "rb") as raw:
        shape, dtype, fortran_order, header = npy_layout(
            raw, os.fstat(raw.fileno()).st_size, path, ""
        )
        return copied_array(
            raw,
            header,
            dtype,
            shape,
            fortran_order=fortran_order,
            where=str(path),
            in_memory=in_memory,
        )


def open_npy(path: Path, form: str | None, dtype: str | None = None) -> Dataset:
    """A ``.npy`` of predictions ``(rows, classes)`` or ``(rows,)`` in ``form`` (None:
    probabilities); its labels come from ``--labels`` (:mod:`._labels`)."""
    form = form or "probs"
    dataset = Dataset(None, None, form, [], str(path), what=f"the predictions ({form})")
    dataset.values = map_npy(path)
    return dataset


def read_npy(path: Path) -> Any:
    """The labels in a ``.npy`` file, read into memory."""
    labels = map_npy(path, in_memory=True)
    if labels.ndim != 1:
        raise labels_shape_error(path, labels.shape)
    return labels


def labels_shape_error(where: Path, shape: tuple[int, ...]) -> SourceError:
    """The error of labels that are not one class id a row, with the fix where the shape
    says it (:func:`._npz.labels_shape_hint`)."""
    return SourceError(
        f"{where}: the labels must be one-dimensional (one class id a row); got shape "
        f"{shape}{labels_shape_hint(shape)}"
    )
