"""``crossent report``: the library's :func:`crossent.report` on a file's predictions.

Every number is computed by the public API; this module only says where the arrays came
from (the file, its form, its class names, the columns a table was read with).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import crossent

from ._dataset import Dataset

__all__ = ["build_report", "validation_options"]


def build_report(
    dataset: Dataset,
    *,
    progress: Callable[[str, int], Callable[[int], None]],
    **options: Any,
) -> crossent.Report:
    """:func:`crossent.report` of ``dataset`` with the command line's ``options``."""
    return crossent.report(
        _predictions(dataset),
        dataset.labels,
        form=dataset.form,
        class_names=dataset.class_names,
        source=dataset.source,
        builtin_example=dataset.builtin,
        ids=dataset.ids,
        columns=dataset.columns,
        progress=progress,
        **options,
    )


def validation_options(validation: Dataset) -> dict[str, Any]:
    """:func:`crossent.report`'s ``temperature_from`` and ``temperature_source`` of the
    validation file of ``--temperature-from`` (read as the report's own file)."""
    return {
        "temperature_from": (_predictions(validation), validation.labels),
        "temperature_source": validation.source,
    }


def _predictions(dataset: Dataset) -> Any:
    """The predictions as :func:`crossent.report` should check them: bfloat16 ones (held
    widened to float32) as a PyTorch bfloat16 tensor, which the library checks with
    bfloat16's tolerance (the narrowing is exact); as float32, a bfloat16 row of
    probabilities, off 1 by up to 4e-3, was refused as not summing to 1.  Without
    PyTorch (a ``.safetensors``), float32, whose tolerance is stricter."""
    values = dataset.values
    if not dataset.bfloat16:
        return values
    try:
        import torch
    except ImportError:
        return values
    array = np.asarray(values)
    return torch.from_numpy(array if array.flags.writeable else array.copy()).to(torch.bfloat16)
