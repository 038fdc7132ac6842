"""The compiled ``crossent.torch.softmax_focal_loss`` (the custom op
``crossent::softmax_focal_v2``): its backward takes the eager path's closed-form logit
gradient (``_focal_eager.closed_gradient``) for float32/float64 logits (N, C).

Its backward went through the generic ``softmax_focal_loss_grad``: about 34 float32
ulps from the float64 truth where the closed form gives about 17 (256 x 4000, class
weights), and slower (``benchmarks/RESULTS.md``, branch leftovers7). Oracle: float64
autograd of the formula in plain torch (``log_softmax``; test_torch_focal_closed_gradient)
and mpmath.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")
from tests.pytorch.test_torch_focal_closed_gradient import (  # noqa: E402  (the oracle)
    _formula,
    _ulps,
)

from crossent.torch import _ops  # noqa: E402


def _problem(scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    z = torch.randn(128, 4000, generator=g) * 3
    y = torch.randint(0, 4000, (128,), generator=g)
    y[7] = -100
    w = (torch.rand(4000, generator=g, dtype=torch.float64) + 0.5) * scale
    return z, y, w  # (float64: 1e300 is no float32)


def _truth(z: torch.Tensor, y: torch.Tensor, w: torch.Tensor, reduction: str) -> torch.Tensor:
    x64 = z.double().requires_grad_()
    upstream = torch.linspace(0.5, 1.5, len(y), dtype=torch.float64)
    loss = _formula(x64, y, w.double(), 2.0, reduction)
    (loss * upstream if reduction == "none" else loss * 0.75).sum().backward()
    assert x64.grad is not None
    return x64.grad


def _op_gradient(z: torch.Tensor, y: torch.Tensor, w: torch.Tensor, reduction: str) -> torch.Tensor:
    x = z.clone().requires_grad_()
    loss = _ops.softmax_focal(x, y, w, 2.0, -100, reduction)
    upstream = torch.linspace(0.5, 1.5, len(y), dtype=torch.float64).to(loss.dtype)
    (loss * upstream if reduction == "none" else loss * 0.75).sum().backward()
    assert x.grad is not None
    return x.grad


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_op_gradient_within_25_ulps_of_the_float64_truth(reduction: str) -> None:
    """float32, class weights, an ignored row, an upstream gradient per row for 'none'
    (measured about 17 ulps; main's generic gradient about 34)."""
    z, y, w = _problem()
    w = w.float()
    assert _ulps(_op_gradient(z, y, w, reduction), _truth(z, y, w, reduction)) < 25


@pytest.mark.parametrize("scale", [1e300, 1e-300], ids=["huge", "tiny"])
@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_op_gradient_of_weights_far_from_one_float64(reduction: str, scale: float) -> None:
    """Weights taken at a power of two of their size and the gradient scaled back (the
    op gets them as given; mutant-guarded: without the scale back it is 2**997 off)."""
    z, y, w = _problem(scale)
    z = z.double()
    torch.testing.assert_close(
        _op_gradient(z, y, w, reduction), _truth(z, y, w, reduction), rtol=1e-12, atol=1e-322
    )


def test_compiled_public_call_matches_the_truth() -> None:
    """``torch.compile`` of the public loss (weighted 'mean') reaches the op's backward."""
    z, y, w = _problem()
    w = w.float()
    compiled = torch.compile(
        lambda x: ct.softmax_focal_loss(x, y, gamma=2.0, weight=w), backend="aot_eager"
    )
    x = z.clone().requires_grad_()
    (compiled(x) * 0.75).backward()
    assert x.grad is not None
    assert _ulps(x.grad, _truth(z, y, w, "mean")) < 25


def _mp_row_gradient(row: list[float], label: int, gamma: float) -> list[float]:
    """d/dz_j of -(1 - p_y)^gamma log p_y by mpmath (60 digits)."""
    mpmath = pytest.importorskip("mpmath")

    def loss(j: int, v: object) -> object:
        z = [mpmath.mpf(x) for x in row]
        z[j] = v
        log_p = z[label] - mpmath.log(mpmath.fsum(mpmath.exp(x) for x in z))
        return -((-mpmath.expm1(log_p)) ** gamma) * log_p

    with mpmath.workdps(60):
        return [float(mpmath.diff(lambda v, j=j: loss(j, v), row[j])) for j in range(len(row))]


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_label_probability_within_ulps_of_one(gamma: float, compiled: bool) -> None:
    """Logits ``[40, 0, -1]``, label 0 (:math:`p_y = 1 - 5.8\\cdot 10^{-18}`): the closed
    form took :math:`\\log p_y` from the rounded row sum, 0, and gave a zero gradient where
    it is about 1e-18 (1e-52 at gamma 2); eager since torchleft5, compiled here."""
    row = [40.0, 0.0, -1.0]
    z = torch.tensor([row, [0.5, -1.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    x = z.clone().requires_grad_()
    if compiled:
        _ops.softmax_focal(x, y, None, gamma, -100, "sum").backward()
    else:
        ct.softmax_focal_loss(x, y, gamma=gamma, reduction="sum").backward()
    assert x.grad is not None
    truth = torch.tensor(_mp_row_gradient(row, 0, gamma), dtype=torch.float64)
    torch.testing.assert_close(x.grad[0], truth, rtol=1e-13, atol=0)
