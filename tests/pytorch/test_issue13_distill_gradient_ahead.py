r"""Issue 13 follow-up (distperf): the distillation op's gradient written by its forward.

An eager ``crossent.torch.distillation_loss`` of CPU float32 or float64 logits whose
student requires a gradient, reduced by ``'mean'`` or ``'sum'``, gets its gradient from
the forward op (``crossent::distillation_cpu_rows`` with ``upstream`` :math:`1/N` or 1:
``_distill_numba.distillation_forward_gradient_kernel``, from each row's exponentials),
and ``loss.backward()`` returns it where every row's upstream is that one. Checked: the
gradient ahead is the backward op's, bit for bit, on hard rows (near rows, a masked
class, equal rows, a gap of :math:`10^3`, a NaN-free far row), T a power of two and
not; ``loss.backward()`` does not run the backward op then, and does run it (the same
bits, scaled) for another upstream and on a second backward (``retain_graph``); no
gradient ahead without a student that requires one, nor for ``'none'``.

On main (638b205) every test fails: the op takes no ``upstream`` and has three outputs,
and ``loss.backward()`` always runs the backward op. Mutants caught: the gradient kept
when the upstream differs (``loss * 2``: twice the bits expected, the ahead gradient
returned); the ahead gradient for ``'none'``; the backward's difference
:math:`e^\sigma a - e^\tau b` and the forward's kept terms out of step (the maxima's
terms left at 0: the bit comparison).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from crossent.torch import _distill_cpu, distillation_loss  # noqa: E402

DTYPES = (torch.float32, torch.float64)


def _hard_rows(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    z = 3 * torch.randn(12, 300, generator=g, dtype=torch.float64)
    v = 3 * torch.randn(12, 300, generator=g, dtype=torch.float64)
    v[1] = z[1] + 1e-7 * torch.randn(300, generator=g, dtype=torch.float64)  # near
    v[2] = z[2]  # equal: D = 0
    z[3, :40] = v[3, :40] = -torch.inf  # a masked vocabulary
    v[4, 7] = -torch.inf  # a teacher probability 0
    z[5, 0] = 1e3  # a gap
    return z.to(dtype), v.to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("temperature", [2.0, 0.7])
def test_gradient_ahead_is_the_backward_ops(dtype: torch.dtype, temperature: float) -> None:
    z, v = _hard_rows(dtype)
    for upstream in (1.0 / z.shape[0], 1.0, 0.37):
        _, stats, kind, ahead = _distill_cpu.distillation_cpu_rows(z, v, temperature, upstream)
        u = torch.full((z.shape[0],), upstream, dtype=torch.float64)
        grad = _distill_cpu.distillation_cpu_rows_backward(u, z, v, stats, kind, temperature)
        assert ahead.shape == z.shape
        assert ahead.dtype == dtype
        assert torch.equal(ahead, grad)
    assert _distill_cpu.distillation_cpu_rows(z, v, temperature)[3].shape == (0, z.shape[1])


class _CalledError(Exception):
    pass


def _refuse(*_: object) -> torch.Tensor:
    raise _CalledError


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_backward_returns_the_gradient_ahead(
    dtype: torch.dtype, reduction: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    z, v = _hard_rows(dtype)
    leaf = z.clone().requires_grad_()
    loss = distillation_loss(leaf, v, temperature=0.7, reduction=reduction)
    with monkeypatch.context() as patch:
        patch.setattr(_distill_cpu, "distillation_cpu_rows_backward", _refuse)
        loss.backward(retain_graph=True)  # the forward's gradient: no backward op
        first = leaf.grad
        assert first is not None
        leaf.grad = None
        with pytest.raises(_CalledError):  # a second backward: the backward op
            loss.backward(retain_graph=True)
        doubled = z.clone().requires_grad_()
        twice = 2.0 * distillation_loss(doubled, v, temperature=0.7, reduction=reduction)
        with pytest.raises(_CalledError):  # another upstream: the backward op
            twice.backward()
    leaf.grad = None
    loss.backward()
    assert torch.equal(leaf.grad, first)
    twice = 2.0 * distillation_loss(doubled, v, temperature=0.7, reduction=reduction)
    twice.backward()
    assert torch.equal(doubled.grad, 2 * first)  # (u and r doubled: exact)


def test_no_gradient_ahead_without_a_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    z, v = _hard_rows(torch.float32)
    seen: list[float] = []
    op = _distill_cpu.distillation_cpu_rows

    def spy(
        student: torch.Tensor, teacher: torch.Tensor, t: float, upstream: float = 0.0, *options: str
    ):
        seen.append(upstream)
        return op(student, teacher, t, upstream, *options)

    monkeypatch.setattr(_distill_cpu, "distillation_cpu_rows", spy)
    distillation_loss(z, v, temperature=2.0)  # no gradient asked for
    leaf = z.clone().requires_grad_()
    with torch.no_grad():
        distillation_loss(leaf, v, temperature=2.0)
    distillation_loss(leaf, v, temperature=2.0, reduction="none").sum().backward()
    distillation_loss(leaf, v, temperature=2.0, reduction="sum").backward()
    assert seen == [0.0, 0.0, 0.0, 1.0]
