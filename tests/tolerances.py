"""Per-dtype tolerances for comparisons against float64/mpmath truth, in one place.

* float64, closed forms: a few ulps per term and a float64-accumulated sum give
  relative errors near 1e-15; 1e-12 leaves room for ``log`` implementations (1-2 ulp)
  and for conditioning up to ~1e3 without hiding a wrong formula (which is off by
  1e-3 or more).
* float32: terms rounded to float32 (eps 1.2e-7) and a float64 sum: 1e-5 covers
  conditioning up to ~100.
"""

from __future__ import annotations

import numpy as np

RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}
ATOL = {np.dtype(np.float64): 1e-14, np.dtype(np.float32): 1e-6}


def rtol(dtype: object) -> float:
    return RTOL[np.dtype(dtype)]


def atol(dtype: object) -> float:
    return ATOL[np.dtype(dtype)]
