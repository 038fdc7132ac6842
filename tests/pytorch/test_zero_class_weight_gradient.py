"""A class weight of 0 has the gradient of its rows' loss, not 0.

``losses._reduction.weighted_term`` forms ``w * value`` with ``0 * inf = 0``. It used to
replace every value beside a weight of 0 by 0 before the product, so autograd's
derivative in that weight was 0 where it is the (finite) value: eager
``softmax_focal_loss`` and the NumPy-style ``softmax_cross_entropy`` on torch tensors gave
a zero gradient for a class weighted 0, while the compiled focal loss (closed-form
backward) gave the true one. The oracle is float64 autograd of the plain formula,
``sum_i w_{y_i} f_i`` (over ``sum_i w_{y_i}`` for ``'mean'``), with nothing masked.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import crossent  # noqa: E402
import crossent.torch as ct  # noqa: E402

LABELS = [0, 1, 2, 3, 0, 2, 1]
WEIGHTS = [1.0, 0.0, 2.0, 0.5]  # class 1 (rows 1 and 6) weighted 0


def _logits() -> torch.Tensor:
    generator = torch.Generator().manual_seed(13)
    return torch.randn(len(LABELS), len(WEIGHTS), dtype=torch.float64, generator=generator)


def _plain_weight_gradient(per_row, reduction: str) -> torch.Tensor:
    weight = torch.tensor(WEIGHTS, dtype=torch.float64, requires_grad=True)
    w_y = weight[torch.tensor(LABELS)]
    total = (w_y * per_row).sum()
    loss = total / w_y.sum() if reduction == "mean" else total
    (gradient,) = torch.autograd.grad(loss, weight)
    return gradient


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_focal_loss_zero_weight_gradient(reduction: str) -> None:
    x, y = _logits(), torch.tensor(LABELS)
    weight = torch.tensor(WEIGHTS, dtype=torch.float64, requires_grad=True)
    loss = ct.softmax_focal_loss(x, y, gamma=2.0, weight=weight, reduction=reduction)
    (found,) = torch.autograd.grad(loss, weight)
    log_p = torch.log_softmax(x, dim=-1).gather(1, y[:, None])[:, 0]
    expected = _plain_weight_gradient(-((1 - log_p.exp()) ** 2) * log_p, reduction)
    assert found[1] != 0
    torch.testing.assert_close(found, expected, rtol=1e-13, atol=0)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_numpy_style_cross_entropy_zero_weight_gradient(reduction: str) -> None:
    x, y = _logits(), torch.tensor(LABELS)
    weight = torch.tensor(WEIGHTS, dtype=torch.float64, requires_grad=True)
    loss = crossent.softmax_cross_entropy(x, y, weight=weight, reduction=reduction)
    (found,) = torch.autograd.grad(loss, weight)
    log_p = torch.log_softmax(x, dim=-1).gather(1, y[:, None])[:, 0]
    expected = _plain_weight_gradient(-log_p, reduction)
    assert found[1] != 0
    torch.testing.assert_close(found, expected, rtol=1e-13, atol=0)


def test_infinite_loss_beside_zero_weight_stays_absent() -> None:
    # the convention 0 * inf = 0 is kept: a row of weight 0 whose loss is inf adds 0,
    # and its weight's gradient is 0 (not NaN)
    x = torch.tensor([[0.0, -torch.inf], [1.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([1, 0])
    weight = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    loss = crossent.softmax_cross_entropy(x, y, weight=weight, reduction="sum")
    (found,) = torch.autograd.grad(loss, weight)
    assert torch.isfinite(loss)
    assert found[1] == 0
