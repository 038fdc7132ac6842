"""The one rounding of the measures' float64 results for float32 (issue 13).

The twin of ``losses._widen.narrow`` for the measures, which may not import a sibling
package's private module (``tests/test_issue11_layout.py``): a NumPy float64 array or
scalar computed from float16/float32 inputs, rounded once to float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["to_float32"]


def to_float32(result: Any) -> Any:
    """``result`` (a NumPy array or scalar) in float32, or a tuple of them each so."""
    if isinstance(result, tuple):  # the decomposition's named tuple
        return type(result)(*map(to_float32, result))
    if isinstance(result, np.ndarray):
        return result.astype(np.float32)
    return np.float32(result)
