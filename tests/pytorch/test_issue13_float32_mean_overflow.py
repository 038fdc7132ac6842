"""A float32 ``'mean'`` whose float32 sum overflows but whose mean does not (issue 13,
branch torchmean1).

``crossent.torch.cross_entropy`` rounded the float64 sum of the rows to float32
(``inf``) before dividing, and NumPy's "overflow encountered in reduce" leaked from the
fused rows' ``inf`` check; ``binary_cross_entropy_with_logits`` divided a float32
``inf`` sum. Every ``'mean'`` is now the float64 sum over the float64 normaliser,
rounded once: the float64 mean rounded to float32. Oracle: the float64 loss (and
PyTorch's float64 autograd for the gradient).
"""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

import crossent.torch as ct  # noqa: E402

F = torch.nn.functional


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 9, generator=g, dtype=torch.float64) * 3e38 / 4
    return z.float().double(), torch.tensor([0, 1, 4, 8, -100, 2])


def _quiet(f):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out = f()
    assert [str(w.message) for w in seen] == []
    return out


@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_mean_is_the_float64_mean_rounded(weighted: bool) -> None:
    z64, y = _batch()
    w64 = torch.linspace(0.25, 1.0, 9, dtype=torch.float64) if weighted else None
    w = None if w64 is None else w64.float()
    x = z64.float().requires_grad_()
    loss = _quiet(lambda: ct.cross_entropy(x, y, weight=w))
    x64 = z64.clone().requires_grad_()
    want = F.cross_entropy(x64, y, weight=w64)
    assert want.item() * 5 > torch.finfo(torch.float32).max  # the float32 sum overflows
    assert loss.dtype == torch.float32
    assert loss.item() == want.float().item()
    loss.backward()
    want.backward()
    torch.testing.assert_close(x.grad, x64.grad.float(), rtol=2e-7, atol=0)


def test_linear_mean_is_cross_entropy_mean() -> None:
    z64, y = _batch()
    z = z64.float()
    loss = _quiet(lambda: ct.linear_cross_entropy(z, torch.eye(9), target=y, ignore_index=-100))
    assert loss.item() == F.cross_entropy(z64, y).float().item()
    assert loss.item() == ct.cross_entropy(z, y).item()


def test_binary_mean_is_the_float64_mean_rounded() -> None:
    x64 = torch.tensor([-3.3e38, -3.3e38, 1.0, -3.3e38], dtype=torch.float32).double()
    t = torch.tensor([1.0, 1.0, 0.0, 1.0])
    x = x64.float().requires_grad_()
    loss = _quiet(lambda: ct.binary_cross_entropy_with_logits(x, t))
    want = F.binary_cross_entropy_with_logits(x64, t.double())
    assert torch.isfinite(want)
    assert loss.item() == want.float().item()
    loss.backward()
    assert torch.equal(
        x.grad, torch.tensor([-0.25, -0.25, 0.25 * torch.sigmoid(torch.tensor(1.0)).item(), -0.25])
    )
