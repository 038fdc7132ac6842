"""``crossent report``: the library's :func:`crossent.report` on a file's predictions.

Every number is computed by the public API; this module only says where the arrays came
from (the file, its form, its class names, the columns a table was read with).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import crossent

from ._dataset import Dataset

__all__ = ["build_report"]


def build_report(
    dataset: Dataset,
    *,
    progress: Callable[[str, int], Callable[[int], None]],
    **options: Any,
) -> crossent.Report:
    """:func:`crossent.report` of ``dataset`` with the command line's ``options``."""
    return crossent.report(
        dataset.values,
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
