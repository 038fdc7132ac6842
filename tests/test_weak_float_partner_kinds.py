"""Which arguments are weak Python floats (mutation pass 7, ``_xp.compute_dtype_weak``).

Only a Python ``float`` is weak: a NumPy ``float64`` scalar, although a subclass of
``float``, is a strong float64 (NumPy 2, NEP 50: ``np.float32(2) * np.float64(0.3)`` is
float64). Guards the mutant ``type(arg) is not float`` -> ``not isinstance(arg, float)``
(the calls below became float32). Oracle: the closed forms in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent


def _bce(p: float, q: float) -> float:
    return -(p * math.log(q) + (1 - p) * math.log1p(-q))


def _sigmoid_ce(z: float, t: float) -> float:
    return max(z, 0.0) - z * t + math.log1p(math.exp(-abs(z)))


@pytest.mark.parametrize("name", ["binary_cross_entropy", "sigmoid_cross_entropy"])
def test_a_numpy_float64_scalar_is_strong(name: str) -> None:
    f = getattr(crossent, name)
    x = np.float32(0.25)
    oracle = _bce if name == "binary_cross_entropy" else _sigmoid_ce
    for args in ((x, np.float64(0.3)), (np.float64(0.3), x)):
        result = f(*args)
        assert result.dtype == np.float64, args
        assert result == pytest.approx(oracle(*(float(a) for a in args)), rel=1e-15)
