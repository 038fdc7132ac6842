"""Issue 13 (branch rowrule1): the class-id ``cross_entropy``'s ``'mean'`` of a float32 row
past float32's range by itself (logits ``[3e38, -3e38]``, label 1, beside five rows
``[0, 0]``: float64 mean 1e38) was recovered eagerly on the CPU only; under
``torch.compile``, ``torch.func`` and off the CPU it stayed ``inf``. Now one rule
(``_reduction.rows_in_range_total``) everywhere, a ``torch.where`` where no host read is
possible: the compiled, ``torch.func`` and off-CPU values and gradients are the eager
ones, bit for bit, and those are the float64 oracle's (``F.cross_entropy`` of the same
values and its autograd gradient, rounded once to float32). No GPU here: the off-CPU
branch runs on the CPU with its host reads switched off (monkeypatch) and the
accelerator's torch path taken (``_accelerator.ON_CPU``). One ``torch.compile``
(``aot_eager``, ``fullgraph``: AOTAutograd traces the backward too; about 1.2 s of CPU)
for the whole file; ``CrossEntropyLoss`` (which calls ``cross_entropy``) eagerly."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from crossent.torch import (  # noqa: E402
    CrossEntropyLoss,
    _accelerator,
    _functional,
    _reduction,
    cross_entropy,
)

_FAR = [[3e38, -3e38]] + [[0.0, 0.0]] * 5
_LABELS = [1, 0, 0, 0, 0, 0]
# A label on a -inf logit: the row is +inf in float64 too, the mean inf (no recovery).
_INFINITE = [[3e38, -3e38], [-float("inf"), 0.0]] + [[0.0, 0.0]] * 4


def _both(z: Any, y: Any) -> Any:
    """The function and the module."""
    return cross_entropy(z, y), CrossEntropyLoss()(z, y)


def _eager(z: Any, y: Any) -> Any:
    return (cross_entropy(z, y),)


_compiled_ce = torch.compile(cross_entropy, fullgraph=True, backend="aot_eager")


def _compiled(z: Any, y: Any) -> Any:
    return (_compiled_ce(z, y),)


def _value_and_grad(fn: Any, rows: list[list[float]], y: Any) -> tuple[Any, Any]:
    z = torch.tensor(rows, requires_grad=True)
    losses = fn(z, y)
    (grad,) = torch.autograd.grad(sum(losses), z)
    return torch.stack(losses).detach(), grad


def _oracle(rows: list[list[float]], y: Any) -> tuple[Any, Any]:
    z64 = torch.tensor(rows).double().requires_grad_()
    loss = F.cross_entropy(z64, y)
    (grad,) = torch.autograd.grad(loss, z64)
    return loss.float(), grad.float()


def _bits_equal(a: Any, b: Any) -> bool:
    return torch.equal(a.view(torch.int32), b.view(torch.int32))


def test_compiled_mean_and_gradient_are_the_eager_ones() -> None:
    y = torch.tensor(_LABELS)
    eager = _value_and_grad(_eager, _FAR, y)
    compiled = _value_and_grad(_compiled, _FAR, y)
    want, want_grad = _oracle(_FAR, y)
    assert _bits_equal(eager[0], want[None])
    assert _bits_equal(compiled[0], eager[0])  # main: inf
    assert _bits_equal(compiled[1], eager[1])
    torch.testing.assert_close(eager[1], want_grad, rtol=1e-6, atol=0)
    # ordinary rows of the same shape (the same graph): the same bits as eager
    rows = torch.randn(6, 2, generator=torch.Generator().manual_seed(0)).mul(3).tolist()
    ordinary = _value_and_grad(_compiled, rows, y)
    same = _value_and_grad(_eager, rows, y)
    assert _bits_equal(ordinary[0], same[0])
    assert _bits_equal(ordinary[1], same[1])


def test_torch_func_grad_and_vmap_recover_the_mean() -> None:
    y = torch.tensor(_LABELS)
    want, want_grad = _oracle(_FAR, y)
    z = torch.tensor(_FAR)
    grad = torch.func.grad(lambda x: cross_entropy(x, y))(z)
    assert torch.equal(grad, _value_and_grad(_eager, _FAR, y)[1])
    torch.testing.assert_close(grad, want_grad, rtol=1e-6, atol=0)
    batch = torch.stack([z, torch.zeros_like(z)])
    means = torch.func.vmap(lambda x: cross_entropy(x, y))(batch)
    assert _bits_equal(means, torch.stack([want, torch.log(torch.tensor(2.0))]))  # main: inf
    per_example = torch.func.vmap(torch.func.grad(lambda x: cross_entropy(x, y)))(batch)
    assert torch.equal(per_example[0], grad)


@pytest.mark.parametrize("rows", [_FAR, _INFINITE], ids=["far", "infinite"])
def test_off_cpu_branch_is_the_host_read_branch(
    rows: list[list[float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The device branch (no host read: ``_reduction.reads_on_host`` False, and main's
    ``_row_overflow_read`` False, the accelerator's torch path): the host-read branch's
    bits; a row ``+inf`` in float64 too keeps the op's value and gradient either way."""
    y = torch.tensor(_LABELS)
    read = _value_and_grad(_both, rows, y)
    monkeypatch.setattr(_accelerator, "ON_CPU", True)
    monkeypatch.setattr(_reduction, "reads_on_host", lambda a, **_: False, raising=False)
    monkeypatch.setattr(_functional, "_row_overflow_read", lambda total: False, raising=False)
    device = _value_and_grad(_both, rows, y)
    assert _bits_equal(device[0], read[0])  # main, far: inf
    assert _bits_equal(device[1], read[1])
    if rows is _INFINITE:
        assert torch.isinf(read[0]).all()
        assert torch.isfinite(read[1]).all()
