r"""Issue 13 follow-up: the host reads of ``crossent.torch.distillation_loss``.

On a GPU each read of a device value on the host (``.item()``, ``.tolist()``,
``bool(tensor)``) waits for the stream. Beside its validation's reads, an ordinary call
made two (the result's finiteness in ``_far_distillation``, the near-row flags in
``losses._distill``), three where the teacher requires a gradient (its far gaps). It now
makes one: the near-row flags are left to the caller (``NEAR_ROWS_LATER``) and read with
the finiteness and the far gaps as one ``tolist``.

Counted by wrapping the reads of ``torch.Tensor`` (their number, not their time: there
is no GPU in CI); validation's reads counted the same way on
``losses._distill.prepare_distillation`` of the same tensors. On main (b4c3614): 2 and 3 reads
past validation, not 1. The results, and their gradients in both sides, are those of the
generic path, which forms the near rows itself, bit for bit: ordinary rows, near rows at
a large temperature, and both in one call.

CPU calls of 2-D tensors whose teacher requires no gradient now go through the fused
op (``crossent.torch._distill_cpu``, its own tests in
``test_issue13_distill_cpu_fused.py``); the generic path these tests pin still serves
every other call (GPU tensors, a teacher that requires a gradient), so they run it
here with the fused op turned off (:func:`generic_path`).
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from crossent import losses  # noqa: E402
from crossent.losses import _distill  # noqa: E402
from crossent.torch import _distill_cpu, distillation_loss  # noqa: E402

READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy", "cpu")
"""The ``torch.Tensor`` methods that bring a device value to the host."""


@pytest.fixture(autouse=True)
def generic_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every call by the generic path (module docstring)."""
    monkeypatch.setattr(_distill_cpu, "applies", lambda *_: False)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """A counter of the host reads of ``torch.Tensor`` (by method name) from now on."""
    counted: collections.Counter[str] = collections.Counter()

    def counting(name: str) -> Callable[..., Any]:
        method = getattr(torch.Tensor, name)

        def read(self: Any, *args: Any, **kwargs: Any) -> Any:
            counted[name] += 1
            return method(self, *args, **kwargs)

        return read

    for name in READS:
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    return counted


def rows(batch: int, classes: int, *, seed: int) -> torch.Tensor:
    """Ordinary float32 logits."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, classes, generator=generator)


@pytest.mark.parametrize("teacher_grad", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "parts"])
def test_one_read_beside_validation(
    reads: collections.Counter[str], reduction: str, teacher_grad: bool
) -> None:
    z = rows(8, 10, seed=1).requires_grad_()
    v = rows(8, 10, seed=2).requires_grad_(teacher_grad)
    _distill.prepare_distillation(z, v, axis=1, temperature=2.0, reduction=reduction)
    validation = sum(reads.values())
    reads.clear()
    loss = distillation_loss(z, v, temperature=2.0, reduction=reduction)
    assert sum(reads.values()) == validation + 1, dict(reads)
    reads.clear()
    total = loss.total if reduction == "parts" else loss
    total.sum().backward()
    assert not reads


def test_near_rows_left_to_no_one_after_a_call() -> None:
    z, v = rows(2, 3, seed=3), rows(2, 3, seed=4)
    distillation_loss(z, v, temperature=1e4)
    with pytest.raises(ValueError, match="same shape"):
        distillation_loss(z, v[:1])
    assert _distill.NEAR_ROWS_LATER.get() is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("near", ["none", "all", "some"])
def test_same_bits_as_the_generic_path(dtype: torch.dtype, reduction: str, near: str) -> None:
    z0 = rows(6, 5, seed=5).to(dtype)
    v0 = rows(6, 5, seed=6).to(dtype)
    temperature = 3.0 if near == "none" else 1e4
    if near == "some":  # rows 0-2 near (the large T), rows 3-5 far from the teacher
        v0[3:] = z0[3:] + 1e4 * rows(3, 5, seed=7).to(dtype)
    results = []
    for path in ("torch", "generic"):
        z, v = z0.clone().requires_grad_(), v0.clone().requires_grad_()
        if path == "torch":
            loss = distillation_loss(z, v, temperature=temperature, reduction=reduction)
        else:
            loss = losses.distillation_loss(
                z, v, axis=1, temperature=temperature, reduction=reduction
            )
        (
            loss * torch.linspace(0.5, 1.5, loss.numel()).to(dtype).reshape(loss.shape)
        ).sum().backward()
        assert z.grad is not None
        assert v.grad is not None
        results.append((loss.detach(), z.grad, v.grad))
    for got, want in zip(*results, strict=True):
        assert torch.equal(got, want)
        assert torch.isfinite(got).all()
