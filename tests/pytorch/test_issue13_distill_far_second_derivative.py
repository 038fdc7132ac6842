r"""Issue 13 follow-up (review): no silent second derivative through the host rows of
``crossent.torch.distillation_loss`` (``_far_distillation._HostRows``).

Its backward is NumPy's gradient, once differentiable. ``once_differentiable`` makes a
second derivative raise only where the upstream gradient requires one; a gradient
penalty :math:`\lVert\partial L/\partial z\rVert^2` has a constant upstream, and the
gradient depends on the saved rows, so at a228ef3..540dca7 its derivative through a
far row was a silent 0 (at :math:`T = 10^{200}` the truth is about the :math:`T =
10^3` one, 0.163 for the first class). It now raises; first-order gradients with
``create_graph=True`` are unchanged.

Oracle: the same call without ``create_graph`` (first order), and the common path's
autograd at :math:`T = 10^3` (the penalty's derivative is not 0 there).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from crossent.torch import distillation_loss  # noqa: E402

STUDENT = [[1.0, 0.2, -0.5]]
TEACHER = [[0.3, -0.4, 0.9]]


def _penalty_gradient(temperature: float) -> torch.Tensor:
    z = torch.tensor(STUDENT, dtype=torch.float64, requires_grad=True)
    v = torch.tensor(TEACHER, dtype=torch.float64)
    (g,) = torch.autograd.grad(distillation_loss(z, v, temperature), z, create_graph=True)
    (g * g).sum().backward()
    return z.grad


def test_a_second_derivative_through_host_rows_raises() -> None:
    assert abs(float(_penalty_gradient(1e3)[0, 0]) - 0.163) < 1e-3  # the common path
    with pytest.raises(RuntimeError, match="no second derivative"):
        _penalty_gradient(1e200)


def test_first_order_with_create_graph_is_unchanged() -> None:
    grads = []
    for create_graph in (False, True):
        z = torch.tensor(STUDENT, dtype=torch.float64, requires_grad=True)
        v = torch.tensor(TEACHER, dtype=torch.float64, requires_grad=True)
        loss = distillation_loss(z, v, 1e200)
        grads.append(torch.autograd.grad(loss, (z, v), create_graph=create_graph))
    for plain, graphed in zip(*grads, strict=True):
        assert torch.equal(plain, graphed.detach())
