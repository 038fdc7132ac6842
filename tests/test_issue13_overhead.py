"""Issue 13, per-call overhead: the NumPy shortcut in namespace inference changes nothing."""

from __future__ import annotations

import array_api_compat
import numpy as np
import pytest

from crossent import InputTypeError
from crossent._xp import accumulation_dtype, compat_numpy, namespace


@pytest.mark.parametrize(
    "arrays",
    [
        (np.zeros(3),),
        (np.zeros((2, 3), dtype=np.float32), np.array([1, 2])),
        (np.array([True, False]),),  # a boolean array stays boolean, as before
        (np.zeros(0, dtype=np.float16), np.zeros(2, dtype=np.uint64)),
    ],
)
def test_issue13_numpy_arrays_take_the_shortcut_with_the_same_result(arrays: tuple) -> None:
    xp, converted = namespace(*arrays, names=tuple(f"a{k}" for k in range(len(arrays))))
    assert xp is compat_numpy
    assert xp is array_api_compat.array_namespace(*arrays)
    for given, got in zip(arrays, converted, strict=True):
        assert got is given


def test_issue13_mixed_inputs_still_convert_and_check() -> None:
    xp, (_, b) = namespace(np.zeros(2), [1.0, 2.0], names=("a", "b"))
    assert xp is compat_numpy
    assert isinstance(b, np.ndarray)
    with pytest.raises(InputTypeError, match="`b` must be real numbers"):
        namespace(np.zeros(2), ["x"], names=("a", "b"))


def test_issue13_numpy_accumulates_in_float64() -> None:
    assert accumulation_dtype(np.float32, xp=compat_numpy, device="cpu") == np.float64
