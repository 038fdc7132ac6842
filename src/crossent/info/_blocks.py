"""Row-blocked evaluation of a measure on NumPy.

A measure is a sum over the class axis of elementwise terms. Computed in one go, the
terms (and, from logits, the log-softmax) are temporaries as large as the input: 760
MiB for 10^5 x 1000 float64 rows. On NumPy, :func:`sum_over_classes` evaluates the
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
from .._xp import Array, is_numpy, reduce_sum

__all__ = ["BLOCK_ELEMENTS", "sum_over_classes"]

BLOCK_ELEMENTS = 1 << 17
"""Elements per block: 1 MiB of float64 terms, a few such temporaries fit in L2."""


def sum_over_classes(
    terms: Callable[..., Array], *sides: Side, xp: ModuleType, out_dtype: Any
) -> Array:
    """``terms(*sides)`` summed over the class axis, by blocks of rows on NumPy."""
    if is_numpy(xp) and not _small(sides):
        shapes = {tuple(s.values.shape) for s in sides}
        shape = shapes.pop() if len(shapes) == 1 else np.broadcast_shapes(*shapes)
        if len(shape) >= 2 and math.prod(shape) > 2 * BLOCK_ELEMENTS:
            return _by_blocks(terms, sides, shape, xp=xp, out_dtype=out_dtype)
    return reduce_sum(terms(*sides), xp=xp, out_dtype=out_dtype)


def _by_blocks(
    terms: Callable[..., Array],
    sides: tuple[Side, ...],
    shape: tuple[int, ...],
    *,
    xp: ModuleType,
    out_dtype: Any,
) -> np.ndarray:
    values = np.broadcast_arrays(*(np.asarray(s.values) for s in sides))
    rows = max(1, BLOCK_ELEMENTS // max(math.prod(shape[1:]), 1))
    out = np.empty(shape[:-1], dtype=out_dtype)
    for start in range(0, shape[0], rows):
        stop = min(start + rows, shape[0])
        blocks = [Side(v[start:stop], s.form, xp) for v, s in zip(values, sides, strict=True)]
        out[start:stop] = reduce_sum(terms(*blocks), xp=xp, out_dtype=out_dtype)
    return out


def _small(sides: tuple[Side, ...]) -> bool:
    """Whether NumPy ``sides`` surely broadcast to at most ``2 * BLOCK_ELEMENTS`` elements
    (the broadcast size is at most the product of the sizes): one block, decided without
    computing the broadcast shape (issue 13: per-call overhead)."""
    total = 1
    for side in sides:
        total *= side.values.size
    return total <= 2 * BLOCK_ELEMENTS
