"""The targets' gradient of ``crossent.torch.sigmoid_focal_loss`` (issue 13, branch
focal4; hostile24's finding): autograd of the generic loss summed :math:`\\mathrm{sp}(-x)`
and :math:`-\\mathrm{sp}(x)` (the cross-entropy's slope) and :math:`\\sigma(-x)` and
:math:`-\\sigma(x)` (the modulation's), which cancel for small :math:`|x|`: float32 logit
``-5.353383e-4`` at ``gamma=0`` gave ``5.353093e-4`` for ``5.353383e-4`` (454 ulps),
float32 logit ``1e-10`` at ``gamma=2`` ``0.0`` and the float64 one ``-5.9657168e-11``
for ``-5.9657359e-11``. Oracle: mpmath's derivative of the closed form at 60 digits."""

from __future__ import annotations

import mpmath
import pytest
import torch

import crossent.torch as ct

LOGITS = [-5.353383e-4, 1e-3, 3e-6, 1e-10, -0.75, 2.5, 12.0]
TARGETS = [0.3, 0.7, 0.5, 0.9, 0.2, 0.05, 0.99]


def _truth(x: float, t: float, gamma: float, alpha: float) -> float:
    """:math:`\\partial\\,\\mathrm{FL}/\\partial t` of float ``x`` and ``t`` (mpmath)."""

    def loss(tm: mpmath.mpf) -> mpmath.mpf:
        xm = mpmath.mpf(x)
        s, s_neg = 1 / (1 + mpmath.exp(-xm)), 1 / (1 + mpmath.exp(xm))
        bce = -(tm * mpmath.log(s) + (1 - tm) * mpmath.log(s_neg))
        value = (tm * s_neg + (1 - tm) * s) ** gamma * bce
        return value if alpha < 0 else (alpha * tm + (1 - alpha) * (1 - tm)) * value

    with mpmath.workdps(60):
        return float(mpmath.diff(loss, mpmath.mpf(t)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("gamma", "alpha", "ulps"), [(0.0, -1.0, 0), (2.0, -1.0, 4), (2.0, 0.25, 4)]
)
def test_focal_target_gradient_against_mpmath(
    dtype: torch.dtype, gamma: float, alpha: float, ulps: int
) -> None:
    """Within ``ulps`` of the truth (``gamma=0`` without ``alpha``: :math:`-x` exactly,
    the binary cross-entropy's slope); the loss and the logits' gradient are the same
    bits as with targets that need no gradient."""
    x = torch.tensor(LOGITS, dtype=dtype, requires_grad=True)
    t = torch.tensor(TARGETS, dtype=dtype, requires_grad=True)
    loss = ct.sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction="sum")
    gx, gt = torch.autograd.grad(loss, (x, t))
    eps = torch.finfo(dtype).eps
    for i, (xi, ti) in enumerate(zip(x.tolist(), t.tolist(), strict=True)):
        true = _truth(xi, ti, gamma, alpha)
        assert abs(gt[i].item() - true) <= ulps * eps * abs(true) + eps / 2 * abs(true), (i, true)
    x0 = x.detach().clone().requires_grad_()
    plain = ct.sigmoid_focal_loss(x0, t.detach(), alpha=alpha, gamma=gamma, reduction="sum")
    assert torch.equal(loss.detach(), plain.detach())
    assert torch.equal(gx, torch.autograd.grad(plain, x0)[0])


def test_second_derivatives_are_the_losses() -> None:
    """The graph that carries the slope keeps every derivative (float64 ``gradcheck`` and
    ``gradgradcheck`` in logits and targets, the mixed ones too). A guard: main passes
    it; it kills the mutant that detaches the logits in the slope's term (the mixed
    second derivative 0)."""
    x = torch.tensor([-0.4, 1e-3, 1.3], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.2, 0.6, 0.9], dtype=torch.float64, requires_grad=True)

    def loss(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return ct.sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0, reduction="sum")

    assert torch.autograd.gradcheck(loss, (x, t))
    assert torch.autograd.gradgradcheck(loss, (x, t))
