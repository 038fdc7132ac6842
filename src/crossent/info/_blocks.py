"""Row-blocked evaluation of a measure on NumPy.

A measure is a sum over the class axis of elementwise terms. Computed in one go, the
terms (and, from logits, the log-softmax) are temporaries as large as the input: 760
MiB for 10^5 x 1000 float64 rows. On NumPy, :func:`evaluate_by_rows` evaluates the
measure on blocks of about 2^17 elements along the first batch axis, so the
temporaries stay in cache and the extra memory is a few MiB whatever the input size.
Rows are independent (the class axis is never split), so the result is identical.

Other namespaces get the whole array at once: GPUs and JIT compilers prefer one fused
expression, and blocking there would add host round-trips.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from .._sides import Side
from .._xp import Array, is_numpy

__all__ = ["BLOCK_ELEMENTS", "evaluate_by_rows"]

BLOCK_ELEMENTS = 1 << 17
"""Elements per block: 1 MiB of float64 terms, a few such temporaries fit in L2."""


def evaluate_by_rows(
    compute: Callable[..., Array], *sides: Side, xp: ModuleType, out_dtype: Any
) -> Array:
    """``compute(*sides)`` (reduced over the class axis), evaluated by blocks of rows on NumPy."""
    if not is_numpy(xp):
        return compute(*sides)
    shapes = {tuple(s.values.shape) for s in sides}
    shape = shapes.pop() if len(shapes) == 1 else np.broadcast_shapes(*shapes)
    if len(shape) < 2 or math.prod(shape) <= 2 * BLOCK_ELEMENTS:
        return compute(*sides)
    values = np.broadcast_arrays(*(np.asarray(s.values) for s in sides))
    elements_per_row = math.prod(shape[1:])
    rows = max(1, BLOCK_ELEMENTS // max(elements_per_row, 1))
    out = np.empty(shape[:-1], dtype=out_dtype)
    for start in range(0, shape[0], rows):
        stop = min(start + rows, shape[0])
        blocks = [Side(v[start:stop], s.form, xp) for v, s in zip(values, sides, strict=True)]
        out[start:stop] = compute(*blocks)
    return out
