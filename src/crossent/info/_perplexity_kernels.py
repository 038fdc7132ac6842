r"""The compiled kernel of :mod:`._perplexity_dd` (Numba): the perplexity of float64
probability rows from their entropy (or cross-entropy) in double-double, one pass an
entry, imported only when first needed (module level for Numba's on-disk cache, as in
``_fused_kernels``). The formulas are :mod:`._perplexity_dd`'s, the product's error by
one FMA, the terms' high parts summed by TwoSum (their errors added in the low part).
"""

from __future__ import annotations

import math
from typing import Any

import numba
from numba import types

from ._fused_kernels import _fma, _two_sum
from ._perplexity_dd import LN2_HI as _LN2_HI
from ._perplexity_dd import LN2_LO as _LN2_LO

__all__ = ["perplexity_rows"]

_SQRT_HALF = math.sqrt(0.5)


@numba.njit(inline="always", error_model="numpy")
def _log_dd(x: float) -> tuple[float, float]:
    r""":math:`\log x` for :math:`x > 0` as ``hi + lo``: :math:`e \ln 2 +
    \log1p(m - 1)`, :math:`x = m 2^e`, :math:`m \in [\sqrt{1/2}, \sqrt 2)`."""
    m, e = math.frexp(x)
    if m < _SQRT_HALF:
        m *= 2.0
        e -= 1
    k = float(e)
    return _two_sum(k * _LN2_HI, k * _LN2_LO + math.log1p(m - 1.0))


def _perplexity_rows(
    a: Any, b: Any, cross: bool, tol_a: float, tol_b: float, first: int, stop: int, out: Any
) -> int:
    """``out[r]`` = the perplexity of row ``r`` of ``a`` (against ``b`` if ``cross``)
    for ``first <= r < stop``, and the number of suspect rows: a side screened (its
    tolerance ``>= 0``) with an entry outside [0, 1] (or NaN) or a sum more than its
    tolerance from 1, as ``_fused_kernels._suspect`` screens probabilities."""
    n = a.shape[1]
    suspects = 0
    for r in range(first, stop):
        hi = lo = 0.0
        infinite = False
        sum_a = sum_b = 0.0
        lo_a = lo_b = 0.0
        hi_a = hi_b = 1.0
        for i in range(n):
            p = a[r, i]
            x = b[r, i] if cross else p
            if tol_a >= 0.0:  # a NaN makes the sum NaN
                sum_a += p
                lo_a, hi_a = min(lo_a, p), max(hi_a, p)
            if tol_b >= 0.0:
                sum_b += x
                lo_b, hi_b = min(lo_b, x), max(hi_b, x)
            if p == 0.0 or infinite:
                continue
            if x == 0.0:
                infinite = True
                continue
            l_hi, l_lo = _log_dd(x)
            t = p * l_hi
            t_lo = _fma(p, l_hi, -t) + p * l_lo
            hi, e = _two_sum(hi, t)
            lo += e + t_lo
        if tol_a >= 0.0 and not (abs(sum_a - 1.0) <= tol_a and lo_a >= 0.0 and hi_a <= 1.0):
            suspects += 1
        if tol_b >= 0.0 and not (abs(sum_b - 1.0) <= tol_b and lo_b >= 0.0 and hi_b <= 1.0):
            suspects += 1
        if infinite:
            out[r] = math.inf
            continue
        s = hi + lo
        s_lo = lo - (s - hi)
        e_h = math.exp(-s)  # (inf past the range: no warning in a kernel)
        out[r] = e_h if math.isinf(e_h) else e_h - e_h * s_lo
    return suspects


_SIDE = types.Array(types.float64, 2, "A", readonly=True)

perplexity_rows = numba.njit(
    [
        types.int64(
            _SIDE,
            _SIDE,
            types.boolean,
            types.float64,
            types.float64,
            types.int64,
            types.int64,
            types.float64[::1],
        )
    ],
    error_model="numpy",
    nogil=True,
    cache=True,
)(_perplexity_rows)
"""The kernel, compiled for its one signature (any layout of float64 rows)."""
