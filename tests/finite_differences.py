"""Central finite differences: the independent oracle for every gradient twin."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def finite_difference(
    f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-6
) -> np.ndarray:
    """``(f(x + h e_i) - f(x - h e_i)) / 2h`` for every index ``i`` of ``x`` (float64)."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = h
        grad[index] = (f(x + step) - f(x - step)) / (2 * h)
    return grad
