"""Eager ``crossent.torch.softmax_focal_loss``: the logit gradient by its closed form.

The eager gradient was autograd's graph of the formula: 171 float32 ulps from the
float64 truth at 1024 x 32000 (class weights), where the closed form
:math:`c_i (p_{ij} - [j = y_i])` gives 18, in about a quarter of the time
(``benchmarks/RESULTS.md``, branch torchleft5). Oracle: float64 autograd of the formula
written here in plain torch (``log_softmax``), and its second derivative.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")
F = torch.nn.functional


def _formula(
    z: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None, gamma: float, reduction: str
) -> torch.Tensor:
    """The focal loss in plain torch (float64), ``-100`` ignored."""
    active = y != -100
    safe = torch.where(active, y, 0)
    log_py = F.log_softmax(z, 1).gather(1, safe[:, None])[:, 0]
    wy = torch.ones_like(log_py) if w is None else w[safe]
    wy = torch.where(active, wy, 0.0)
    rows = -wy * (-torch.expm1(log_py)) ** gamma * log_py
    if reduction == "none":
        return rows
    return rows.sum() / wy.sum() if reduction == "mean" else rows.sum()


def _ulps(got: torch.Tensor, truth: torch.Tensor) -> float:
    t32 = truth.float().abs().clamp_min(torch.finfo(torch.float32).tiny)
    ulp = (torch.nextafter(t32, torch.tensor(float("inf"))) - t32).double()
    return float(((got.double() - truth).abs() / ulp).max())


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_float32_gradient_within_30_ulps(weighted: bool) -> None:
    """float32 logits (x 3, 64 x 32000, gamma 2, 'mean'): the logit gradient within 30
    ulps of the float64 truth (measured 17.8 / 17.7; main, autograd's graph: 79.8 /
    226.3)."""
    g = torch.Generator().manual_seed(5)
    z = torch.randn(64, 32000, generator=g) * 3
    y = torch.randint(0, 32000, (64,), generator=g)
    w = torch.rand(32000, generator=g) + 0.5 if weighted else None
    x = z.clone().requires_grad_()
    ct.softmax_focal_loss(x, y, gamma=2.0, weight=w).backward()
    x64 = z.double().requires_grad_()
    _formula(x64, y, None if w is None else w.double(), 2.0, "mean").backward()
    assert x.grad is not None
    assert x64.grad is not None
    assert _ulps(x.grad, x64.grad) <= 30


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_float64_gradient_is_the_formulas(reduction: str, gamma: float, weighted: bool) -> None:
    """float64, an ignored row, a near-certain row (gap 12), an upstream of random
    weights: the formula's gradient within 1e-13 relative (guards the closed form's
    terms: the mean's normaliser, the ignored row, the weights, the label entry)."""
    g = torch.Generator().manual_seed(6)
    z = torch.randn(7, 6, dtype=torch.float64, generator=g) * 3
    z[2, 4] = 12.0
    y = torch.tensor([0, 5, 4, -100, 1, 1, 3])
    w = torch.rand(6, dtype=torch.float64, generator=g) + 0.5 if weighted else None
    x, xr = z.clone().requires_grad_(), z.clone().requires_grad_()
    got = ct.softmax_focal_loss(x, y, gamma=gamma, weight=w, reduction=reduction)
    expected = _formula(xr, y, w, gamma, reduction)
    up = torch.rand(expected.shape, dtype=torch.float64, generator=g)
    (gx,) = torch.autograd.grad(got, x, up)
    (gr,) = torch.autograd.grad(expected, xr, up)
    torch.testing.assert_close(gx, gr, rtol=1e-13, atol=1e-15)
    assert torch.equal(gx[3], torch.zeros(6, dtype=torch.float64))


def test_every_row_ignored_mean_gradient_zero() -> None:
    """'mean' of rows all ignored: loss 0, gradient 0 (W = 0)."""
    x = torch.randn(3, 4, dtype=torch.float64).requires_grad_()
    loss = ct.softmax_focal_loss(x, torch.full((3,), -100), gamma=2.0)
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert x.grad is not None
    assert torch.equal(x.grad, torch.zeros(3, 4, dtype=torch.float64))


def test_second_derivative_is_the_formulas() -> None:
    """A ``create_graph`` backward (a gradient penalty): the formula's second derivative
    (the generic path's graph there)."""
    g = torch.Generator().manual_seed(7)
    z = torch.randn(5, 4, dtype=torch.float64, generator=g)
    y = torch.tensor([0, 3, 1, 1, 2])
    w = torch.rand(4, dtype=torch.float64, generator=g) + 0.5
    v = torch.randn(5, 4, dtype=torch.float64, generator=g)
    out = []
    for loss in (
        lambda x: ct.softmax_focal_loss(x, y, gamma=2.0, weight=w),
        lambda x: _formula(x, y, w, 2.0, "mean"),
    ):
        x = z.clone().requires_grad_()
        (gx,) = torch.autograd.grad(loss(x), x, create_graph=True)
        (hv,) = torch.autograd.grad((gx * v).sum(), x)
        out.append(hv)
    torch.testing.assert_close(out[0], out[1], rtol=1e-12, atol=1e-14)


def test_weights_that_require_grad_keep_autograd() -> None:
    """Class weights that require grad: their gradient (the closed form forms none; the
    call keeps autograd's graph), the formula's."""
    g = torch.Generator().manual_seed(8)
    z = torch.randn(6, 5, dtype=torch.float64, generator=g)
    y = torch.tensor([0, 4, 1, -100, 2, 2])
    w = (torch.rand(5, dtype=torch.float64, generator=g) + 0.5).requires_grad_()
    wr = w.detach().clone().requires_grad_()
    x, xr = z.clone().requires_grad_(), z.clone().requires_grad_()
    got = torch.autograd.grad(ct.softmax_focal_loss(x, y, weight=w), (x, w))
    expected = torch.autograd.grad(_formula(xr, y, wr, 2.0, "mean"), (xr, wr))
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)


def test_label_at_minus_inf_gradient_is_the_numpy_twins() -> None:
    """A label whose logit is ``-inf`` (:math:`p_y = 0`, loss ``inf``): the gradient's
    limit :math:`w_y (p - e_y)`, as ``crossent.softmax_focal_loss_grad`` (NumPy) gives it
    (main: NaN in that row, autograd's ``0 * inf``)."""
    import numpy as np

    import crossent

    z = np.array([[-np.inf, 0.0, 1.0], [0.5, -np.inf, 2.0]])
    y = np.array([0, 2])
    x = torch.tensor(z).requires_grad_()
    ct.softmax_focal_loss(x, torch.tensor(y), gamma=2.0).backward()
    expected = crossent.softmax_focal_loss_grad(z, y, gamma=2.0, reduction="mean")
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-14, atol=0)
