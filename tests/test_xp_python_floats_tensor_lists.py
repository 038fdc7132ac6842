"""A hostile pass over the Array-API functions with other libraries' arrays
(branch arrayapi2): each test is named after the bug it pins and fails on the code
before its fix."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from tests.tolerances import CLOSED_FORM, assert_close

import crossent
from crossent import InputTypeError


def _bce(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Binary cross-entropy in float64, written out (the oracle)."""
    return -(p * np.log(q) + (1 - p) * np.log1p(-q))


def _bce_grad(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Its derivative in ``q``: (q - p) / (q (1 - q))."""
    return (q - p) / (q * (1 - q))


def _array(library: str, values: list[float], dtype: str) -> object:
    if library == "numpy":
        return np.asarray(values, dtype=dtype)
    module = pytest.importorskip(library)
    return module.asarray(values, dtype=getattr(module, dtype))


_SCALAR_CALLS: dict[str, tuple[Callable[..., object], Callable[..., np.ndarray], bool]] = {
    # name: (function, float64 oracle, whether the scalar is the first argument)
    "binary_cross_entropy(x, 0.3)": (crossent.binary_cross_entropy, _bce, False),
    "binary_cross_entropy(0.3, x)": (crossent.binary_cross_entropy, _bce, True),
    "binary_cross_entropy_grad(0.3, x)": (crossent.binary_cross_entropy_grad, _bce_grad, True),
}


@pytest.mark.parametrize(
    ("library", "dtype"),
    [
        ("numpy", "float16"),
        ("numpy", "float32"),
        ("torch", "float16"),
        ("torch", "float32"),
        ("array_api_strict", "float32"),  # (it has no float16)
    ],
)
@pytest.mark.parametrize("call", list(_SCALAR_CALLS))
def test_a_python_float_does_not_promote_a_float32_array_to_float64(
    call: str, library: str, dtype: str
) -> None:
    """A Python float beside a float32 (or float16) array made the result float64, in
    every library but JAX without x64: ``binary_cross_entropy(x32, 0.3)`` was float64
    while ``binary_cross_entropy(x32, 1)`` and JAX's were float32 (and a float16
    tensor's float64, not the float32 of the precision rule). A Python number is weak,
    as in NumPy 2 (NEP 50), PyTorch and the Array API standard: it takes the array's
    computing dtype, here float32, and the value is that of the number rounded to it."""
    fn, oracle, scalar_first = _SCALAR_CALLS[call]
    values = [0.2, 0.7, 0.9]
    x = _array(library, values, dtype)
    got = fn(0.3, x) if scalar_first else fn(x, 0.3)
    assert "float32" in str(got.dtype)
    assert type(got).__module__.partition(".")[0] == library
    as_numpy = np.asarray(got.tolist() if library == "torch" else got, dtype=np.float64)
    held = np.asarray(values, dtype=dtype).astype(np.float64)
    scalar = np.full(3, float(np.float32(0.3)))
    truth = oracle(scalar, held) if scalar_first else oracle(held, scalar)
    assert_close(as_numpy, truth, CLOSED_FORM, np.float32)


def test_a_list_of_tensors_that_require_grad_is_an_input_type_error() -> None:
    """A list of 0-d tensors that require grad (NumPy input, as every list) raised
    PyTorch's ``RuntimeError: Can't call numpy() on Tensor that requires grad`` from
    inside ``numpy.asarray``, not crossent's ``InputTypeError`` naming the argument
    (the same list without grad is read as NumPy's)."""
    torch = pytest.importorskip("torch")
    p = [torch.tensor(0.5, requires_grad=True), torch.tensor(0.5)]
    with pytest.raises(InputTypeError, match=r"`p`.*torch\.stack"):
        crossent.entropy(p)
