"""Hostile review of ``crossent.torch`` (issue 13, branch hostile24): the targets'
gradient of ``binary_cross_entropy_with_logits``, and non-finite logits under
probability targets of ``cross_entropy``."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional

import crossent.torch as ct
from crossent.errors import InputError

# torch.func's first transform calls a deprecated torch.jit API inside PyTorch.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")

#: Logits where the targets' slope ``sp(-x) - sp(x) = -x`` is small against the
#: softplus terms (the difference of the two cancelled).
SMALL = [-5.353383e-4, 1e-3, 3e-6, -0.75, 2.5]


def _target_grad(x: torch.Tensor, t: torch.Tensor, **options: object) -> torch.Tensor:
    t = t.clone().requires_grad_()
    ct.binary_cross_entropy_with_logits(x, t, **options).sum().backward()
    assert t.grad is not None
    return t.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bce_target_gradient_is_minus_the_logit(dtype: torch.dtype) -> None:
    """Without ``pos_weight`` the targets' gradient is :math:`-x` exactly (as PyTorch's):
    float32 logit -5.353383e-4 gave 5.353093e-4 (454 ulps)."""
    x = torch.tensor([*SMALL, 1e-10, -3e-9], dtype=dtype)
    t = torch.rand(x.shape, dtype=dtype, generator=torch.Generator().manual_seed(3))
    assert torch.equal(_target_grad(x, t, reduction="sum"), -x)
    w = torch.full(x.shape, 0.5, dtype=dtype)  # a power of 2: still exact
    assert torch.equal(_target_grad(x, t, weight=w, reduction="sum"), -x / 2)
    x64, t64 = x.double(), t.double().clone().requires_grad_()
    functional.binary_cross_entropy_with_logits(x64, t64).backward()  # 'mean': PyTorch's -x / n
    assert t64.grad is not None
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(_target_grad(x, t), t64.grad.to(dtype), rtol=eps, atol=0)


def _slope(x: float, pi: float) -> float:
    """:math:`\\pi\\,\\mathrm{sp}(-x) - \\mathrm{sp}(x)` in exact-enough float64."""
    return pi * math.log1p(math.exp(-x)) - math.log1p(math.exp(x)) if x < 30 else -x


def test_bce_target_gradient_with_pos_weight_rounded_once() -> None:
    """With ``pos_weight``: within an ulp of the float64 slope (float32 was 114 ulps
    off at logit 0.7501895, pos_weight 2.9494691, slope 0.00389, as
    ``F.binary_cross_entropy_with_logits``')."""
    x = torch.tensor([*SMALL, 0.7501895, -40.0, 60.0])
    pw = torch.tensor(2.9494691)
    t = torch.full(x.shape, 0.5)
    got = _target_grad(x, t, pos_weight=pw, reduction="sum").double()
    want = torch.tensor([_slope(float(v), float(pw)) for v in x], dtype=torch.float64)
    ulp = torch.finfo(torch.float32).eps * want.abs()
    assert bool(((got - want).abs() <= ulp).all()), (got - want) / ulp


def test_bce_target_tangent_is_minus_the_logit() -> None:
    """Forward mode (``torch.func.jvp`` in the targets) takes the same slope."""
    x = torch.tensor([1e-10, -3e-9, -5.353383e-4], dtype=torch.float64)
    t = torch.full(x.shape, 0.25, dtype=torch.float64)

    def loss(targets: torch.Tensor) -> torch.Tensor:
        return ct.binary_cross_entropy_with_logits(x, targets, reduction="none")

    _, tangent = torch.func.jvp(loss, (t,), (torch.ones_like(t),))
    assert torch.equal(tangent, -x)


def test_bce_target_gradient_at_infinite_logits_kept() -> None:
    """Guard (passes on main): infinite logits keep their slopes, an absent term (a
    ``pos_weight`` of 0 at ``-inf``) 0, not NaN."""
    x = torch.tensor([-math.inf, math.inf, -math.inf, math.inf])
    pw = torch.tensor([2.0, 2.0, 0.0, 0.0])
    t = torch.tensor([1.0, 0.0, 1.0, 0.0])
    got = _target_grad(x, t, pos_weight=pw, reduction="none")
    assert torch.equal(got, torch.tensor([math.inf, -math.inf, 0.0, -math.inf]))
    assert torch.equal(_target_grad(x, t, reduction="none"), -x)


NONFINITE = [
    (math.nan, r"`input` contains NaN at index \(1, 2, 3\)"),
    (math.inf, r"`input` \(logits\) must not be \+inf; got \+inf at index \(1, 2, 3\)"),
    (-math.inf, r"`input` \(logits\) has row \(1, 3\) entirely -inf"),
]


@pytest.mark.parametrize(("value", "message"), NONFINITE, ids=["nan", "+inf", "-inf row"])
@pytest.mark.parametrize("path", ["op", "generic"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_probability_targets_name_a_nonfinite_logit(
    dtype: torch.dtype, path: str, value: float, message: str
) -> None:
    """A NaN or ``+inf`` logit, or a row entirely ``-inf``, under probability targets is
    an :class:`InputError` naming the entry in the caller's ``(N, C, d1)`` layout, as
    for class ids and in the NumPy API; it was a silent NaN loss (CPU op and the
    generic path of targets that require grad)."""
    z = torch.randn(2, 3, 4).to(dtype)
    if value == -math.inf:
        z[1, :, 3] = value
    else:
        z[1, 2, 3] = value
    t = torch.full((2, 3, 4), 1 / 3, dtype=dtype, requires_grad=path == "generic")
    with pytest.raises(InputError, match=message):
        ct.cross_entropy(z, t, reduction="sum")


def test_probability_targets_minus_inf_under_zero_target_kept() -> None:
    """Guard (passes on main): a ``-inf`` logit beside a finite one is no error (0 log 0
    = 0 under a target of 0, ``inf`` under a positive one)."""
    z = torch.tensor([[0.0, -math.inf], [0.0, -math.inf]])
    t = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    got = ct.cross_entropy(z, t, reduction="none")
    assert torch.equal(got, torch.tensor([0.0, math.inf]))
