"""Vocab-parallel z-loss rows whose :math:`\\operatorname{LSE}^2` leaves float32's range
(issue 13, branch hostiledist1).

Two findings, against :func:`crossent.torch.cross_entropy` of the gathered logits and
the float64 formula:

- a row of label weight 0 (a class weight of 0) with float32 logits of 1e30 and
  ``z_loss=1e-3``: :math:`\\lambda\\cdot 0\\cdot\\operatorname{LSE}^2 = 0\\cdot\\infty`
  gave a NaN loss (so a NaN sum and mean) and NaN gradients on every rank, where the
  unsharded loss gives 0 (and the smoothing term, 6.67e28, with ``label_smoothing``);
- float32 logits ``[1e20, 0, -1e20]`` with ``z_loss=1e-3``: :math:`\\operatorname{LSE}^2 =
  10^{40}` overflows float32 while :math:`\\lambda\\operatorname{LSE}^2 = 10^{37}` does
  not: ``inf``, where the unsharded loss gives 1e37; so float64 logits of 1e200 with
  ``z_loss=1e-300``: ``inf`` for 1e100.

One gloo rank (no spawn) for the values, and one spawn of two ranks (an uneven split,
the linear loss too) for the same answer on every rank.
"""

from __future__ import annotations

import math
import tempfile

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

import crossent.torch as ct  # noqa: E402
from spawned import gloo_marks, one_rank_group, run_spawned  # noqa: E402

pytestmark = gloo_marks()

WEIGHT = torch.tensor([1.0, 0.0, 1.0])
TARGET = torch.tensor([1, 0])


def _logits() -> torch.Tensor:
    return torch.tensor([[1e30, 0.0, -1e30], [2e30, 1.0, 0.0]], dtype=torch.float32)


def _zero_weight_row(split: tuple[int, ...], rank: int) -> None:
    """The zero-weight row's loss and gradient, every reduction, against the unsharded."""
    lo = sum(split[:rank])
    for eps in (0.0, 0.1):
        options = {"weight": WEIGHT, "z_loss": 1e-3, "label_smoothing": eps}
        full = _logits().requires_grad_()
        want = ct.cross_entropy(full, TARGET, reduction="none", **options)
        want[0].backward()
        mine = _logits()[:, lo : lo + split[rank]].clone().requires_grad_()
        got = ct.vocab_parallel_cross_entropy(mine, TARGET, reduction="none", **options)
        assert got[0].item() == want[0].item()  # 0, or the smoothing term 6.67e28
        assert math.isinf(got[1].item())  # lambda LSE^2 = 4e57: truly past float32
        got[0].backward()
        assert torch.equal(mine.grad, full.grad[:, lo : lo + split[rank]])
        for reduction in ("sum", "mean"):  # inf (row 1), never NaN
            loss = ct.vocab_parallel_cross_entropy(mine, TARGET, reduction=reduction, **options)
            assert loss.item() == math.inf


def _square_past_float32(split: tuple[int, ...], rank: int) -> None:
    lo = sum(split[:rank])
    z = torch.tensor([[1e20, 0.0, -1e20], [3e38, 0.0, -1e20]], dtype=torch.float32)
    y = torch.tensor([0, 1])
    options = {"z_loss": 1e-3, "temperature": 0.5, "label_smoothing": 0.1}
    want = ct.cross_entropy(z, y, reduction="none", weight=WEIGHT, **options)
    mine = z[:, lo : lo + split[rank]]
    got = ct.vocab_parallel_cross_entropy(mine, y, reduction="none", weight=WEIGHT, **options)
    assert math.isfinite(want[1].item())  # the zero-weight row: no z-loss, no 0 * inf
    assert math.isfinite(got[0].item())
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0.0)
    # float64 formula of row 0: lambda (m/T + ell)^2 + smoothing, m/T = 2e20
    lse = 2e20 + math.log1p(2 * math.exp(-2e20))
    smooth = 0.1 / 3 * (lse - (1e20 / 0.5) + lse) + 0.9 * 0.0  # classes 0 and 2 weigh 1
    exact = 1e-3 * 1.0 * lse * lse + 0.9 * (lse - 2e20) + smooth
    assert abs(got[0].item() - exact) <= 1e-6 * exact
    # the linear loss: logits h W^T of one feature
    h = torch.tensor([[1.0], [1.0]], dtype=torch.float32)
    w = torch.tensor([[1e20], [0.0], [-1e20]], dtype=torch.float32)[lo : lo + split[rank]]
    linear = ct.vocab_parallel_linear_cross_entropy(h, w, y[:1].expand(2), z_loss=1e-3)
    assert abs(linear.item() - 1e37) <= 1e-6 * 1e37
    # float64: LSE^2 = 1e400 past float64, lambda LSE^2 = 1e100 (and 1e304 at T = 0.01)
    for big, z_loss, temperature, exact in (
        (1e200, 1e-300, 1.0, 1e100),
        (1e300, 1e-300, 0.01, 1e304),
    ):
        z64 = torch.tensor([[big, 0.0, -big]], dtype=torch.float64)[:, lo : lo + split[rank]]
        loss = ct.vocab_parallel_cross_entropy(z64, y[:1], z_loss=z_loss, temperature=temperature)
        assert abs(loss.item() - exact) <= 1e-15 * exact


def _worker(rank: int, world: int) -> None:
    split = (2, 1) if world == 2 else (3,)
    _zero_weight_row(split, rank)
    _square_past_float32(split, rank)
    if world == 2:  # one rank holds no class
        _zero_weight_row((0, 3), rank)
        _square_past_float32((0, 3), rank)


def test_z_loss_rows_past_float32_one_rank() -> None:
    with tempfile.TemporaryDirectory() as folder, one_rank_group(folder):
        _worker(0, 1)


def test_z_loss_rows_past_float32_on_every_rank() -> None:
    run_spawned(_worker, 2, timeout=120)
