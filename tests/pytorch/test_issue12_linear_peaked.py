"""Issue 12, accuracy item: linear cross-entropy on bf16/fp16 peaked rows.

Rows whose label probability is 0.9, 0.99 or 0.999 are where a rounded ``p_y`` minus 1
loses its digits (Liger Kernel once returned 100 % error there). With ``W`` the identity
the logits are the hidden states exactly (a product with 1 and zeros is exact in every
dtype), so the float64 truth of the same low-precision values is known, and crossent's
gradients must be no further from it than naive PyTorch's in the same dtype.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
ct = pytest.importorskip("crossent.torch")

CLASSES = 512


def _peaked(rows: int, p_y: float, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits whose softmax gives the label probability ``p_y`` (float64)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(rows, CLASSES, dtype=torch.float64, generator=gen) * 0.1
    y = torch.randint(0, CLASSES, (rows,), generator=gen)
    rest = torch.logsumexp(z.scatter(1, y[:, None], -torch.inf), 1)
    z.scatter_(1, y[:, None], (rest + np.log(p_y / (1 - p_y)))[:, None])
    return z, y


def _loss_and_grads(fn, h, w, y):  # type: ignore[no-untyped-def]
    h, w = h.detach().clone().requires_grad_(True), w.detach().clone().requires_grad_(True)
    loss = fn(h, w, y, reduction="sum")
    return loss.detach(), torch.autograd.grad(loss, (h, w))


def _naive(h, w, y, *, reduction):  # type: ignore[no-untyped-def]
    return F.cross_entropy(F.linear(h, w), y, reduction=reduction)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("p_y", [0.9, 0.99, 0.999])
def test_issue12_linear_peaked_rows_no_worse_than_naive_same_dtype(dtype, p_y) -> None:  # type: ignore[no-untyped-def]
    z, y = _peaked(48, p_y, seed=11)
    h = z.to(dtype)
    w = torch.eye(CLASSES, dtype=dtype)
    truth, (gh_truth, gw_truth) = _loss_and_grads(_naive, h.double(), w.double(), y)
    ours, (gh, gw) = _loss_and_grads(ct.linear_cross_entropy, h, w, y)
    naive, (gh_naive, gw_naive) = _loss_and_grads(_naive, h, w, y)
    assert ours.dtype == torch.float32
    assert gh.dtype == dtype
    assert gw.dtype == dtype
    assert abs(float(ours) - float(truth)) <= 1e-5 * abs(float(truth))
    assert abs(float(ours) - float(truth)) <= abs(float(naive) - float(truth)) + 1e-6
    for g, g_naive, g_truth in ((gh, gh_naive, gh_truth), (gw, gw_naive, gw_truth)):
        err = float((g.double() - g_truth).abs().max())
        assert err <= float((g_naive.double() - g_truth).abs().max()) + 1e-12
    # p_y - 1 keeps its digits: the label entries of dL/dh within one ulp of the dtype
    g_y, t_y = gh.double().gather(1, y[:, None]), gh_truth.gather(1, y[:, None])
    assert float(((g_y - t_y).abs() / t_y.abs()).max()) <= torch.finfo(dtype).eps
