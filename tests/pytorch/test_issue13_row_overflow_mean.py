"""Issue 13 (branch torchrow1): an unweighted float32 row whose loss is past float32's
range by itself (logits ``[3e38, -3e38]``, label 1: ``L = 6e38``) beside ordinary rows
made the ``'mean'`` ``inf`` where the mean is a float32 number (1e38). Oracles: float64
``torch.nn.functional.cross_entropy`` of the same float32 values and its autograd
gradient, rounded once to float32; ``'none'`` and ``'sum'`` keep their ``inf``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import crossent  # noqa: E402
import crossent.torch as ct  # noqa: E402
from crossent.torch import cross_entropy, linear_cross_entropy  # noqa: E402
from spawned import one_rank_group  # noqa: E402

_FAR = [[3e38, -3e38]] + [[0.0, 0.0]] * 5
_LABELS = [1, 0, 0, 0, 0, 0]


def _oracle(z: Any, y: Any, **options: Any) -> tuple[Any, Any]:
    """The float64 mean and gradient of float32 logits ``z``, rounded once to float32."""
    z64 = z.detach().double().requires_grad_()
    w = options.pop("weight", None)
    loss = F.cross_entropy(z64, y, weight=None if w is None else w.double(), **options)
    (grad,) = torch.autograd.grad(loss, z64)
    return loss.float(), grad.float()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"label_smoothing": 0.1},
        {"weight": torch.tensor([0.5, 1.0])},
        {"ignore_index": -100},
    ],
    ids=["plain", "smoothing", "weight", "ignore"],
)
def test_cross_entropy_mean_of_a_far_row(options: dict[str, Any]) -> None:
    z = torch.tensor(_FAR, requires_grad=True)
    y = torch.tensor(_LABELS)
    if "ignore_index" in options:
        y[2] = -100
    loss = cross_entropy(z, y, **options)
    (grad,) = torch.autograd.grad(loss, z)
    want, want_grad = _oracle(z, y, **dict(options))
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, want, rtol=2e-7, atol=0)
    torch.testing.assert_close(grad, want_grad, rtol=1e-6, atol=1e-7)


def test_cross_entropy_temperature_below_one() -> None:
    # Logits of 1e38 at T = 1/2: the row's 4e38 is past float32, the mean (4e38/6) not.
    z = torch.tensor([[1e38, -1e38]] + [[0.0, 0.0]] * 5, requires_grad=True)
    y = torch.tensor(_LABELS)
    loss = cross_entropy(z, y, temperature=0.5)
    (grad,) = torch.autograd.grad(loss, z)
    want, want_grad = _oracle(z / 0.5, y)
    torch.testing.assert_close(loss, want, rtol=2e-7, atol=0)
    torch.testing.assert_close(grad, want_grad * 2, rtol=1e-6, atol=1e-7)


def test_cross_entropy_z_loss_past_float32() -> None:
    # lambda LSE^2 = 4e38 for a row of logits [2e19, 0]: the mean 6.7e37 is finite.
    z = torch.tensor([[2e19, 0.0]] + [[0.0, 0.0]] * 5, requires_grad=True)
    y = torch.zeros(6, dtype=torch.int64)
    loss = cross_entropy(z, y, z_loss=1.0)
    (grad,) = torch.autograd.grad(loss, z)
    z64 = z.detach().double().requires_grad_()
    lse = torch.logsumexp(z64, 1)
    want = (F.cross_entropy(z64, y, reduction="none") + lse * lse).mean()
    (want_grad,) = torch.autograd.grad(want, z64)
    torch.testing.assert_close(loss, want.float(), rtol=2e-7, atol=0)
    torch.testing.assert_close(grad, want_grad.float(), rtol=1e-6, atol=1e-7)


def test_none_and_sum_keep_their_inf() -> None:
    # A guard of existing behaviour: the float32 row and the float32 sum are inf.
    z = torch.tensor(_FAR)
    y = torch.tensor(_LABELS)
    assert torch.isinf(cross_entropy(z, y, reduction="none")[0])
    assert torch.isinf(cross_entropy(z, y, reduction="sum"))
    x = torch.tensor([[1.0, 0.0]] + [[0.0, 0.0]] * 5)
    w = torch.tensor([[3e38, 0.0], [-3e38, 0.0]])
    assert torch.isinf(linear_cross_entropy(x, w, y, reduction="none")[0])
    assert torch.isinf(linear_cross_entropy(x, w, y, reduction="sum"))


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_linear_cross_entropy_mean_of_a_far_row(chunk_size: int | None) -> None:
    x = torch.tensor([[1.0, 0.0]] + [[0.0, 0.5]] * 5, requires_grad=True)
    w = torch.tensor([[3e38, 0.0], [-3e38, 1.0]], requires_grad=True)
    y = torch.tensor(_LABELS)
    loss = linear_cross_entropy(x, w, y, chunk_size=chunk_size)
    gx, gw = torch.autograd.grad(loss, (x, w))
    x64, w64 = (t.detach().double().requires_grad_() for t in (x, w))
    want = F.cross_entropy(x64 @ w64.T, y)
    wx, ww = torch.autograd.grad(want, (x64, w64))
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, want.float(), rtol=2e-7, atol=0)
    torch.testing.assert_close(gx, wx.float(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(gw, ww.float(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("linear", [False, True], ids=["logits", "linear"])
def test_vocab_parallel_mean_of_a_far_row(linear: bool, tmp_path: object) -> None:
    """One gloo rank in this process: the logits loss, and the linear one (identity
    classifier), eagerly."""
    z = torch.tensor(_FAR, requires_grad=True)
    y = torch.tensor(_LABELS)
    with one_rank_group(str(tmp_path)):
        if linear:
            loss = ct.vocab_parallel_linear_cross_entropy(z, torch.eye(2), y)
        else:
            loss = ct.vocab_parallel_cross_entropy(z, y)
        none = ct.vocab_parallel_cross_entropy(z.detach(), y, reduction="none")
    (grad,) = torch.autograd.grad(loss, z)
    want, want_grad = _oracle(z, y)
    torch.testing.assert_close(loss, want, rtol=2e-7, atol=0)
    torch.testing.assert_close(grad, want_grad, rtol=1e-6, atol=1e-7)
    assert torch.isinf(none[0])


def test_ordinary_rows_unchanged() -> None:
    # A guard: rows within range keep the float64 sum of the float32 rows, bit for bit.
    gen = torch.Generator().manual_seed(13)
    z = torch.randn(64, 11, generator=gen) * 30
    y = torch.randint(0, 11, (64,), generator=gen)
    rows = cross_entropy(z, y, reduction="none")
    assert cross_entropy(z, y) == (rows.sum(dtype=torch.float64) / 64).float()


@pytest.mark.parametrize(
    "options",
    [{}, {"label_smoothing": 0.1}, {"temperature": 0.75}, {"base": 2.0}],
    ids=["plain", "smoothing", "temperature", "bits"],
)
def test_numpy_float32_mean_of_a_far_row(options: dict[str, Any]) -> None:
    z = np.array(_FAR, dtype=np.float32)
    y = np.array(_LABELS)
    got = crossent.softmax_cross_entropy(z, y, **options)
    base = options.pop("base", None)
    t = options.pop("temperature", 1.0)
    want = F.cross_entropy(torch.from_numpy(z).double() / t, torch.tensor(y), **options)
    if base is not None:
        want = want / np.log(base)
    assert got.dtype == np.float32
    assert got == np.float32(want.item())
    grad = crossent.softmax_cross_entropy_grad(z, y)
    assert np.isfinite(grad).all()
