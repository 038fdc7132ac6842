r"""``multiclass_hinge_loss_grad`` of a PyTorch tensor that requires a gradient (issue 13,
stop 74, branch focal3).

On main it returned a tensor with no graph (``requires_grad`` False), where every other
``*_grad`` function of such a tensor (``softmax_cross_entropy_grad``,
``sigmoid_focal_loss_grad``, ...) returns one that is part of the logits' graph, so a
penalty on the hinge's subgradient raised "element 0 of tensors does not require grad".
The subgradient is piecewise constant: now it is part of the graph with the derivative 0,
as ``torch.sign``'s. Oracles: the NumPy call (the values) and ``torch.sign`` (a zero
derivative's convention).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import crossent  # noqa: E402


@pytest.mark.parametrize("variant", ["crammer_singer", "weston_watkins"])
@pytest.mark.parametrize("axis", [-1, 0])
def test_hinge_gradient_is_in_the_graph_with_zero_derivative(variant: str, axis: int) -> None:
    """The same values as NumPy's; part of the graph as ``softmax_cross_entropy_grad``'s
    and ``torch.sign``'s; its own gradient 0 (no NaN from infinite scores)."""
    g = torch.Generator().manual_seed(7)
    z = torch.randn(5, 4, dtype=torch.float64, generator=g) * 2
    z[1, 2] = -torch.inf
    labels = torch.tensor([0, 1, 3, 2, -100])
    if axis == 0:
        z = z.T.contiguous()
    options = {"variant": variant, "axis": axis, "ignore_index": -100, "reduction": "mean"}
    zr = z.clone().requires_grad_()
    grad = crossent.multiclass_hinge_loss_grad(zr, labels, **options)
    expected = crossent.multiclass_hinge_loss_grad(z.numpy(), labels.numpy(), **options)
    assert grad.requires_grad
    assert grad.requires_grad == torch.sign(zr).requires_grad
    softmax = crossent.softmax_cross_entropy_grad(zr, labels, axis=axis, ignore_index=-100)
    assert grad.requires_grad == softmax.requires_grad
    assert np.array_equal(grad.detach().numpy(), expected)
    assert np.array_equal(np.signbit(grad.detach().numpy()), np.signbit(expected))
    (second,) = torch.autograd.grad((grad * torch.arange(20.0).reshape(z.shape)).sum(), zr)
    assert torch.equal(second, torch.zeros_like(z))


def test_hinge_gradient_penalty_backward_and_no_grad() -> None:
    """A penalty on the subgradient differentiates to 0 (on main: "does not require
    grad"), a loss plus it backpropagates the loss's gradient; under ``no_grad`` the
    result has no graph, as before."""
    z = torch.tensor([[3.0, 2.5, 2.8], [0.1, 0.2, 5.0]], requires_grad=True)
    labels = torch.tensor([0, 2])
    loss = crossent.multiclass_hinge_loss(z, labels, reduction="sum")
    penalty = crossent.multiclass_hinge_loss_grad(z, labels, reduction="sum").square().sum()
    (alone,) = torch.autograd.grad(penalty, z, retain_graph=True)
    assert torch.equal(alone, torch.zeros_like(z))
    (loss + penalty).backward()
    expected = crossent.multiclass_hinge_loss_grad(z.detach().numpy(), labels.numpy())
    assert z.grad is not None
    assert np.array_equal(z.grad.numpy(), expected * 2)  # ('mean' of 2 rows vs 'sum')
    with torch.no_grad():
        assert not crossent.multiclass_hinge_loss_grad(z, labels).requires_grad
