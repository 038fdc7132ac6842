"""The compiled float64-to-float32 cast of the lean paths' results (issue 13, Numba).

:func:`narrow_vector` and :func:`narrow_matrix` write ``out[...] = a`` entry by entry:
Numba's cast of a float64 to float32 is the machine's conversion (``fptrunc``), which
rounds to nearest, ties to even, as NumPy's ``astype`` does: a value past float32's
range is ``+-inf`` (from :math:`2^{128} - 2^{103}` on), a NaN stays a NaN, a value
below the smallest subnormal is 0. Unlike NumPy's cast it raises no "overflow
encountered in cast" warning, so no ``np.errstate`` (about a microsecond of a small
call) is entered around it. Any layout (``A`` arrays): the caller picks one entry point
per rank (``_small_narrow``) and passes any float64 array of that rank.

Numba caches both on disk (``cache=True``). Importing this module imports Numba:
``_small_narrow`` imports it on the first result that it narrows.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["narrow_matrix", "narrow_vector"]


@numba.njit(cache=True)
def narrow_vector(a: np.ndarray, out: np.ndarray) -> None:
    """``out[:] = a`` of a float64 vector ``a`` into a float32 one of its length."""
    for i in range(a.shape[0]):
        out[i] = np.float32(a[i])


@numba.njit(cache=True)
def narrow_matrix(a: np.ndarray, out: np.ndarray) -> None:
    """``out[:, :] = a`` of a float64 matrix ``a`` into a float32 one of its shape."""
    rows, columns = a.shape
    for i in range(rows):
        for j in range(columns):
            out[i, j] = np.float32(a[i, j])
