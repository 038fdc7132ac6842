r"""The NumPy twin of :mod:`._row_kernels`: the same per-row summaries, without Numba.

:func:`row_summaries` takes the arguments of its namesake and returns the same
quantities with the same formulas, on blocks of consecutive rows of about
:data:`BLOCK_ELEMENTS` entries: each block is widened to float64 once (a copy that
stays in cache), and the row sums, squares, maxima and the label's column are taken
from that copy, so the whole matrix is never copied and peak extra memory is a few
blocks.  A block is suspect (the caller then runs the full check) when its minimum is
below 0 or its maximum above 1 (a NaN propagates through both), or a row sum is
farther from 1 than ``limit``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BLOCK_ELEMENTS", "row_summaries"]

BLOCK_ELEMENTS = 1 << 16
"""Entries per block (a float64 working copy of 512 KiB, in L2 cache)."""


def row_summaries(
    values: np.ndarray,
    labels: np.ndarray,
    *,
    top: bool,
    entropy: bool,
    limit: float,
    first_row: int = 0,
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """``(suspect rows, p_label, sum_{k != y} p_k^2, confidence, predicted, entropy)``
    (confidence and predicted None unless ``top``, entropy None unless ``entropy``).
    ``first_row``, the kernels' numbering of the rows in a label's error, is not read:
    a label out of range is NumPy's own ``IndexError``, which names no row."""
    from scipy import special  # here, not at import (issue 13: import time)

    n, classes = values.shape
    p_label, others = np.empty(n), np.empty(n)
    confidence = np.empty(n) if top else None
    predicted = np.empty(n, dtype=np.intp) if top else None
    ent = np.empty(n) if entropy else None
    suspect = 0
    step = max(1, BLOCK_ELEMENTS // max(classes, 1))
    for start in range(0, n, step):
        stop = min(start + step, n)
        x = np.asarray(values[start:stop], dtype=np.float64)
        rows = np.arange(stop - start)
        y = labels[start:stop]
        if x.size and not (x.min() >= 0.0 and x.max() <= 1.0):
            suspect += 1
        squares = np.square(x)
        total = x.sum(axis=1)
        suspect += int(np.count_nonzero(np.abs(total - 1.0) > limit))
        p_label[start:stop] = x[rows, y]
        squares[rows, y] = 0.0
        others[start:stop] = squares.sum(axis=1)
        if confidence is not None and predicted is not None:
            first = np.argmax(x, axis=1)
            predicted[start:stop] = first
            confidence[start:stop] = x[rows, first]
        if ent is not None:
            ent[start:stop] = special.entr(x).sum(axis=1)
    return suspect, p_label, others, confidence, predicted, ent
