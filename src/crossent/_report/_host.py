"""Predictions and labels from NumPy, PyTorch, pandas (or anything NumPy can read) on the host.

NumPy arrays and memory maps are used as they are (never copied); tensors are detached
and copied to the host (float16 and bfloat16 as float32); a pandas DataFrame gives its
columns as class names.  No optional library is imported here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["host_array", "host_labels"]


def host_array(x: Any, *, name: str) -> tuple[Any, list[str] | None]:
    """``x`` as a NumPy array (or memory map) and, for a DataFrame, its column names."""
    if isinstance(x, np.ndarray):
        return x, None
    module = type(x).__module__.split(".")[0]
    if module == "pandas":
        names = [str(c) for c in x.columns] if hasattr(x, "columns") else None
        return x.to_numpy(), names
    if module == "torch":
        tensor = x.detach()
        if tensor.dtype.is_floating_point and tensor.element_size() < 4:
            tensor = tensor.float()
        return tensor.cpu().numpy(), None
    try:
        return np.asarray(x), None
    except Exception:
        try:
            return np.from_dlpack(x), None
        except Exception as exc:
            raise InputError(
                f"`{name}` could not be read as a host array ({type(x).__name__}); move it to "
                "the CPU first"
            ) from exc


def host_labels(labels: Any) -> Any:
    """The labels as a NumPy array (their dtype is checked by the evaluation functions)."""
    array, _ = host_array(labels, name="labels")
    if array.ndim != 1:
        raise InputError(f"`labels` must be one-dimensional; got shape {tuple(array.shape)}")
    return array
