"""Hostile pass: the sigmoid gradient of an empty input.

``sigmoid_cross_entropy_grad(np.zeros((0, 3)), np.zeros((0, 3)))`` raised
``ValueError: range() arg 3 must not be zero`` on main (c7e5b3b6), for every reduction,
option and float32/float64 shape with no entries: the compiled kernel stepped through the
entries in blocks of ``min(BLOCK, size)``, 0 for an empty input. So did the backward of
``crossent.torch.binary_cross_entropy_with_logits`` and ``BCEWithLogitsLoss`` on empty
CPU tensors (the same kernel). The loss of the same input, every other gradient and the
long double path give their empty result. The oracle is the definition: the gradient
has the shape of ``logits`` (no entries) and the loss's dtype, as PyTorch's autograd
gives for ``F.binary_cross_entropy_with_logits``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import crossent

SHAPES = [(0,), (0, 3), (3, 0), (2, 0, 3)]
OPTIONS: list[dict[str, Any]] = [
    {},
    {"weight": "classes"},
    {"pos_weight": "classes"},
    {"label_smoothing": 0.1},
    {"validate": False},
]


def _options(options: dict[str, Any], shape: tuple[int, ...], dtype: Any) -> dict[str, Any]:
    """``options`` with a weight per class (the last axis) where it says ``'classes'``."""
    return {k: np.ones(shape[-1:], dtype) if v == "classes" else v for k, v in options.items()}


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "parts"])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(o) or "plain")
def test_sigmoid_gradient_of_an_empty_input_is_empty(
    shape: tuple[int, ...], dtype: Any, reduction: str, options: dict[str, Any]
) -> None:
    x = np.zeros(shape, dtype)
    kw = _options(options, shape, dtype)
    grad = crossent.sigmoid_cross_entropy_grad(x, x, reduction=reduction, **kw)
    assert isinstance(grad, np.ndarray)
    assert grad.shape == shape
    assert grad.dtype == np.dtype(dtype)
    # the loss of the same call was already computed (its gradient's consistency)
    crossent.sigmoid_cross_entropy(x, x, reduction=reduction, **kw)


def test_torch_sigmoid_backward_of_an_empty_input_is_empty() -> None:
    torch = pytest.importorskip("torch")
    import crossent.torch as ct

    for dtype in (torch.float32, torch.float64):
        for reduction in ("mean", "sum"):
            x = torch.zeros((0, 3), dtype=dtype, requires_grad=True)
            t = torch.zeros((0, 3), dtype=dtype)
            ct.binary_cross_entropy_with_logits(x, t, reduction=reduction).backward()
            assert x.grad is not None
            assert x.grad.shape == (0, 3)
            assert x.grad.dtype == dtype
            # PyTorch's own autograd at the same input: the same empty gradient
            y = torch.zeros((0, 3), dtype=dtype, requires_grad=True)
            torch.nn.functional.binary_cross_entropy_with_logits(
                y, t, reduction=reduction
            ).backward()
            assert y.grad is not None
            assert y.grad.shape == x.grad.shape
