"""The sign of a sigmoid gradient entry of weight 0, on every namespace (issue 13).

On main an entry whose weight is 0 was ``weight * 0`` (a zero of the weight's sign: +0.0)
on NumPy, Numba's kernels, the small calls and torch tensors, but ``weight * value`` (a
zero of the gradient's sign: -0.0 beside a negative gradient) on array-api-strict and
JAX, for ``sigmoid_cross_entropy_grad`` and ``sigmoid_focal_loss_grad``. Equal numbers,
different bits. Now every namespace gives the NumPy zero, scaled as the other entries are
(a base below 1 makes it -0.0 everywhere). The oracle is the definition: ``weight *
0.0`` times the reduction's scale, and the other entries are float64 PyTorch autograd's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import crossent

X = [[0.0, -2.0, 3.0, -0.5, 1.5], [40.0, -40.0, 0.25, -3.0, 2.0]]
T = [[1.0, 1.0, 0.0, 0.7, 1.0], [0.0, 1.0, 1.0, 0.2, 0.0]]
W = [[0.0, 0.0, 0.0, 0.0, 1.5], [0.0, -0.0, 2.0, 0.0, 0.5]]  # gradients of both signs at 0
FUNCTIONS = {
    "bce": crossent.sigmoid_cross_entropy_grad,
    "focal": crossent.sigmoid_focal_loss_grad,
}
OPTIONS = {
    "sum": {"reduction": "sum"},
    "mean_base_half": {"base": 0.5},
    "none_smoothing": {"reduction": "none", "label_smoothing": 0.1},
}


def _namespace(name: str) -> Any:
    if name == "jax":
        return pytest.importorskip("jax.numpy")
    return pytest.importorskip(name)


def _torch_gradient(function: str, options: dict[str, Any]) -> np.ndarray:
    """float64 PyTorch autograd of the same loss (torch's own formulas)."""
    torch = pytest.importorskip("torch")
    x = torch.tensor(X, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(T, dtype=torch.float64)
    w = torch.tensor(W, dtype=torch.float64)
    eps = options.get("label_smoothing", 0.0)
    t = t * (1 - eps) + eps / 2
    loss = torch.nn.functional.binary_cross_entropy_with_logits(x, t, reduction="none")
    if function == "focal":
        p = torch.sigmoid(x)
        loss = loss * (1 - (p * t + (1 - p) * (1 - t))) ** 2
    loss = w * loss / math.log(options.get("base", math.e))
    reduction = options.get("reduction", "mean")
    total = loss.sum() / (w.sum() if reduction == "mean" else 1)
    total.backward()
    assert x.grad is not None
    return x.grad.numpy()


@pytest.mark.parametrize("namespace", ["array_api_strict", "jax.numpy"])
@pytest.mark.parametrize("options", list(OPTIONS))
@pytest.mark.parametrize("function", list(FUNCTIONS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_entry_of_weight_zero_is_the_numpy_zero_on_every_namespace(
    function: str, options: str, namespace: str, dtype: str
) -> None:
    xp = _namespace(namespace)
    if namespace == "jax.numpy" and dtype == "float64":
        jax = pytest.importorskip("jax")
        if not jax.config.read("jax_enable_x64"):
            pytest.skip("JAX without x64")
    kwargs = OPTIONS[options]
    w = np.array(W, dtype=dtype)
    got = FUNCTIONS[function](
        xp.asarray(np.array(X, dtype=dtype)),
        xp.asarray(np.array(T, dtype=dtype)),
        weight=xp.asarray(w),
        **kwargs,
    )
    got = np.asarray(got)
    reference = FUNCTIONS[function](
        np.array(X, dtype=dtype), np.array(T, dtype=dtype), weight=w, **kwargs
    )
    assert got.dtype == reference.dtype == np.dtype(dtype)
    # the definition: w * 0 times the scale (the sign of the scale: base 1/2 is ln b < 0)
    scale = -1.0 if "base" in kwargs else 1.0
    zero = w == 0
    expected_sign = np.signbit(w * 0.0 * scale)
    assert (got[zero] == 0).all()
    np.testing.assert_array_equal(np.signbit(got[zero]), expected_sign[zero])
    np.testing.assert_array_equal(np.signbit(reference[zero]), expected_sign[zero])
    torch_gradient = _torch_gradient(function, kwargs)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, torch_gradient, rtol=rtol, atol=0)
