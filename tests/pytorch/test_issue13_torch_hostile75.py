"""Hostile pass 75 over ``crossent.torch`` (issue 13, branch torchhostile8): torch.func
second derivatives and legacy-vmap gradients of the sigmoid focal loss at gamma > 0,
int options under ``torch.compile(dynamic=True, fullgraph=True)``, the softmax focal
drop-in's argument names."""

from __future__ import annotations

import pytest
import torch

import crossent.torch as ct
from crossent.errors import InputError


def _focal_formula(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """torchvision's sigmoid focal loss, alpha 0.25, gamma 2, 'mean' (float64 oracle)."""
    p = torch.sigmoid(x)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    return ((0.25 * t + 0.75 * (1 - t)) * (1 - p_t) ** 2 * ce).mean()


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(75)
    x = torch.randn(4, 3, dtype=torch.float64, generator=g) * 2
    return x, torch.rand(4, 3, dtype=torch.float64, generator=g)


def _focal(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return ct.sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0, reduction="mean")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # (torch.func's own jit use)
def test_sigmoid_focal_hessian_by_torch_func() -> None:
    # main: "You are attempting to call Tensor.requires_grad_() ..." (the jvp rule)
    x, t = _data()
    want = torch.autograd.functional.hessian(_focal_formula, (x, t))
    got = torch.func.hessian(_focal, argnums=(0, 1))(x, t)
    for i in range(2):
        for j in range(2):
            torch.testing.assert_close(got[i][j], want[i][j], rtol=1e-10, atol=1e-15)
    # The targets held constant (main raised here)
    got_x = torch.func.hessian(lambda z: _focal(z, t))(x)
    torch.testing.assert_close(got_x, want[0][0], rtol=1e-10, atol=1e-15)


def test_sigmoid_focal_batched_gradients_of_targets() -> None:
    # main: "Batching rule not implemented for aten::detach" (the targets' gradient)
    x, t = _data()
    inputs = (x.requires_grad_(), t.requires_grad_())
    assert torch.autograd.gradcheck(_focal, inputs, check_batched_grad=True)
    fn = lambda a, b: ct.sigmoid_focal_loss(a, b, gamma=2.0, reduction="none")  # noqa: E731
    fast = torch.autograd.functional.jacobian(fn, (x.detach(), t.detach()), vectorize=True)
    slow = torch.autograd.functional.jacobian(fn, (x.detach(), t.detach()))
    for a, b in zip(fast, slow, strict=True):
        assert torch.equal(a, b)


@pytest.mark.filterwarnings("ignore::UserWarning")  # (Dynamo's lru_cache note)
def test_int_gamma_compiles_dynamic_fullgraph() -> None:
    # main: "Unsupported torch.* op returned non-Tensor" (math.isfinite of a SymInt)
    x, t = _data()
    x = x.float().requires_grad_()

    def loss(z: torch.Tensor, gamma: int) -> torch.Tensor:
        return ct.sigmoid_focal_loss(z, t.float(), gamma=gamma, reduction="sum")

    compiled = torch.compile(loss, backend="eager", fullgraph=True, dynamic=True)
    got, want = compiled(x, 2), loss(x, 2)
    assert torch.equal(got, want)
    assert torch.equal(torch.autograd.grad(got, x)[0], torch.autograd.grad(want, x)[0])


def test_softmax_focal_drop_in_names_input_and_target() -> None:
    x = torch.randn(5, 3)
    x[0, 0] = float("nan")
    with pytest.raises(InputError, match=r"^`input` contains NaN"):
        ct.softmax_focal_loss(x, torch.tensor([0, 1, 2, 0, 1]))
    with pytest.raises(InputError, match=r"^`target` must be integers in \[0, 3\)"):
        ct.softmax_focal_loss(torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 5]))
