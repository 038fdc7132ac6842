r"""The compiled screen of ``_softmax_small``'s float32 label gradient for rows of a huge
log-sum-exp (``_far_lse``): such a call leaves the compiled small call for the full
path, whose kernel gradient forms those rows again from the row maximum (issue 13).
Imports Numba: imported on first use."""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["any_far"]


@numba.njit(cache=True)
def any_far(z: np.ndarray, temperature: float, far_lse: float) -> bool:  # pragma: no cover
    r"""Whether an entry of ``z`` (rows x classes) has :math:`|z|/T \ge` ``far_lse``
    :math:`- \log V - 1`: only then can a row's :math:`|\mathrm{LSE}| = |m/T + \ell|`,
    with :math:`0 \le \ell \le \log V`, reach ``far_lse``. A NaN passes (the compiled
    call flags it)."""
    n, classes = z.shape
    limit = (far_lse - math.log(max(classes, 1)) - 1.0) * temperature
    for i in range(n):
        for c in range(classes):
            if abs(z[i, c]) >= limit:
                return True
    return False
