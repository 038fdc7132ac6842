"""Issue 13, branch leftovers14: ``'mean'`` with class weights near the ends of the
float32 range off the CPU. There ``mean_scaled_weight`` read nothing on the host and
scaled nothing, so CUDA weights of ``1e-40`` or ``1e38`` still gave the NaN gradient or
NaN/``inf`` loss that the CPU had lost (branch hostiletorch3). These tests take the
off-CPU branch on the CPU (``reads_on_host`` patched to ``False``).

Oracle: ``torch.nn.functional.cross_entropy`` in float64 on the same (float32-rounded)
logits, hidden states and weights.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import crossent.torch as ct  # noqa: E402
from crossent.torch import _reduction  # noqa: E402


@pytest.fixture
def off_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """The branch that CUDA (and any device but the CPU) takes eagerly."""
    monkeypatch.setattr(_reduction, "reads_on_host", lambda weight: False)


def _case(scale: float) -> tuple:
    g = torch.Generator().manual_seed(3)
    h = torch.randn(6, 3, generator=g)
    linear_weight = torch.randn(5, 3, generator=g)
    weight = (torch.rand(5, generator=g) + 0.5) * scale  # float32: 1e-40 is subnormal
    y = torch.tensor([0, 1, -100, 3, 4, 2])
    return h, linear_weight, weight, y


@pytest.mark.usefixtures("off_host")
@pytest.mark.parametrize("loss", ["cross_entropy", "linear_cross_entropy"])
@pytest.mark.parametrize("scale", [1e-40, 1e38])
def test_off_cpu_mean_with_extreme_class_weights_is_the_float64_mean(
    loss: str, scale: float
) -> None:
    # Before (main's off-CPU branch, weight unscaled): cross_entropy's gradient NaN at
    # 1e-40 and its loss NaN at 1e38; linear_cross_entropy's loss inf at both.
    h, linear_weight, weight, y = _case(scale)
    h.requires_grad_()
    options = {"weight": weight, "label_smoothing": 0.1, "ignore_index": -100}
    if loss == "cross_entropy":
        ours = ct.cross_entropy(F.linear(h, linear_weight), y, **options)
    else:
        ours = ct.linear_cross_entropy(h, linear_weight, y, **options)
    (grad,) = torch.autograd.grad(ours, h)
    h64 = h.detach().double().requires_grad_()
    options["weight"] = weight.double()
    exact = F.cross_entropy(F.linear(h64, linear_weight.double()), y, **options)
    (grad64,) = torch.autograd.grad(exact, h64)
    assert 1.0 < float(exact.detach()) < 5.0
    torch.testing.assert_close(ours.double(), exact, rtol=1e-6, atol=0.0)
    torch.testing.assert_close(grad.double(), grad64, rtol=1e-5, atol=1e-7)


def test_off_cpu_scaling_of_ordinary_weights_keeps_the_bits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ordinary weights (largest 3.2: scaled by 1/4 off the CPU, left alone on it) give
    # the same mean and gradient bit for bit on both branches; also under vmap (one
    # weight vector per example). Kills a scaling by 1/max(w), not a power of 2.
    g = torch.Generator().manual_seed(5)
    z, weight = torch.randn(64, 7, generator=g), torch.rand(7, generator=g) * 3 + 0.2
    y = torch.randint(0, 7, (64,), generator=g)
    y[::5] = -100
    weights = torch.stack([weight, weight * 7.0, weight / 3.0])

    def loss(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return ct.cross_entropy(x, y, weight=w, label_smoothing=0.1, z_loss=1e-3)

    results = []
    for host in (True, False):
        monkeypatch.setattr(_reduction, "reads_on_host", lambda weight, host=host: host)
        x = z.clone().requires_grad_()
        mean = loss(x, weight)
        batched = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(z, weights)
        results.append((mean, *torch.autograd.grad(mean, x), batched))
    assert all(torch.equal(a, b) for a, b in zip(*results, strict=True))
