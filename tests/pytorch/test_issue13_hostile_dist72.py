"""Issue 13, hostile pass 72 over the vocab-parallel losses (branch hostile3): guards.

No finding: against :func:`crossent.torch.cross_entropy` and
:func:`crossent.torch.linear_cross_entropy` of the gathered vocabulary (float64, every
reduction, label smoothing with class weights, z-loss, soft cap and temperature, a
batch whose every row is ignored) the losses and gradients agree to 1e-12 for odd
vocabularies (V = 1, 2, 3, 257) split unevenly, a rank holding no class included, on
one rank and on three; and a rank whose labels differ from the others' raises the same
:class:`~crossent.errors.InputError` on every rank instead of leaving them waiting in a
collective (each spawn bounded by a timeout).
"""

from __future__ import annotations

import tempfile

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

import crossent.torch as ct  # noqa: E402
from crossent.errors import InputError  # noqa: E402
from spawned import gloo_marks, one_rank_group, run_spawned  # noqa: E402

pytestmark = gloo_marks()

OPTIONS = (
    {},
    {"label_smoothing": 0.2, "weight": True},
    {"z_loss": 1e-3, "soft_cap": 2.0, "temperature": 0.7},
)


def _splits(v: int, world: int) -> list[tuple[int, ...]]:
    if world == 1:
        return [(v,)]
    return [(0, v, 0), (v // 3, 0, v - v // 3), (1, min(1, v - 1), max(v - 2, 0))]


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def _sharded_equals_gathered(rank: int, world: int) -> None:
    for v in (1, 2, 3, 257):
        gen = torch.Generator().manual_seed(v)
        z = torch.randn(4, v, generator=gen, dtype=torch.float64) * 3
        y = torch.randint(0, v, (4,), generator=gen)
        y[1] = -100
        w = torch.rand(v, generator=gen, dtype=torch.float64) + 0.1
        h = torch.randn(4, 3, generator=gen, dtype=torch.float64)
        head = torch.randn(v, 3, generator=gen, dtype=torch.float64)
        bias = torch.randn(v, generator=gen, dtype=torch.float64)
        for split in _splits(v, world):
            lo = sum(split[:rank])
            hi = lo + split[rank]
            for given in OPTIONS:
                options = {**given, "weight": w} if "weight" in given else given
                for labels, reduction in ((y, "none"), (torch.full((4,), -100), "mean")):
                    full = z.clone().requires_grad_()
                    want = ct.cross_entropy(full, labels, reduction=reduction, **options)
                    want.sum().backward()
                    mine = z[:, lo:hi].clone().requires_grad_()
                    got = ct.vocab_parallel_cross_entropy(
                        mine, labels, reduction=reduction, **options
                    )
                    got.sum().backward()
                    _close(got, want)
                    _close(mine.grad, full.grad[:, lo:hi])
            full_h = h.clone().requires_grad_()
            full_w, full_b = head.clone().requires_grad_(), bias.clone().requires_grad_()
            want = ct.linear_cross_entropy(
                full_h, full_w, y, linear_bias=full_b, weight=w, ignore_index=-100,
                label_smoothing=0.2, reduction="sum",
            )  # fmt: skip
            want.backward()
            mine_h = h.clone().requires_grad_()
            mine_w = head[lo:hi].clone().requires_grad_()
            mine_b = bias[lo:hi].clone().requires_grad_()
            got = ct.vocab_parallel_linear_cross_entropy(
                mine_h, mine_w, y, bias=mine_b, class_weight=w, label_smoothing=0.2,
                reduction="sum",
            )  # fmt: skip
            got.backward()
            _close(got, want)
            _close(mine_h.grad, full_h.grad)
            _close(mine_w.grad, full_w.grad[lo:hi])
            _close(mine_b.grad, full_b.grad[lo:hi])


def _worker(rank: int, world: int) -> None:
    _sharded_equals_gathered(rank, world)
    # rank 2's labels differ: every rank raises (no rank waits in a collective)
    z = torch.zeros(3, 2)
    y = torch.tensor([0, 1, 2]) if rank != 2 else torch.tensor([0, 1, 5])
    with pytest.raises(InputError, match="disagree"):
        ct.vocab_parallel_cross_entropy(z, y)


def test_vocab_parallel_odd_vocabularies_one_rank() -> None:
    with tempfile.TemporaryDirectory() as folder, one_rank_group(folder):
        _sharded_equals_gathered(0, 1)


def test_vocab_parallel_odd_vocabularies_three_ranks() -> None:
    run_spawned(_worker, 3, timeout=180)
