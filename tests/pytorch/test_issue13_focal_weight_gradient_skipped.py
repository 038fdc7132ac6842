r"""The compiled ``softmax_focal_loss``'s backward forms the class weights' gradient only
where the weights require one (issue 13).

On main the op ``crossent::softmax_focal_v1``'s backward formed it on every call (the
loss twice more: the unweighted rows, and the mean for ``'mean'``), about 2.5 s of
7.7 s at 1024 x 32000 with class weights (``benchmarks/RESULTS.md``). Now
``crossent::softmax_focal_v2_backward`` takes ``weight_grad``; the forward's value and
the logits' gradient are unchanged, the weights' gradient (where asked) too.
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")
_ops = pytest.importorskip("crossent.torch._ops")
losses = pytest.importorskip("crossent.losses")


def _inputs() -> tuple[Any, Any, Any]:
    g = torch.Generator().manual_seed(3)
    z = 3 * torch.randn(6, 5, dtype=torch.float64, generator=g)
    y = torch.randint(0, 5, (6,), generator=g)
    y[2] = -100
    w = torch.rand(5, dtype=torch.float64, generator=g) + 0.25
    return z, y, w


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_backward_forms_no_weight_gradient_when_unasked(
    reduction: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backward's evaluations of the loss (the weights' gradient needs the unweighted
    rows): none where the weights need no gradient (main: 1, or 2 for ``'mean'``), and
    the logits' gradient is that of float64 autograd of the formula either way."""
    z, y, w = _inputs()
    calls = []
    original = losses.softmax_focal_loss

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("reduction"))
        return original(*args, **kwargs)

    for asked, expected in ((False, 0), (True, 2 if reduction == "mean" else 1)):
        x, wc = z.clone().requires_grad_(), w.clone().requires_grad_(asked)
        loss = _ops.softmax_focal(x, y, wc, 2.0, -100, reduction)
        monkeypatch.setattr(losses, "softmax_focal_loss", counted)
        calls.clear()
        loss.sum().backward()
        monkeypatch.setattr(losses, "softmax_focal_loss", original)
        assert len(calls) == expected, (asked, calls)
        # The oracle: autograd of the NumPy twin's formula on torch float64.
        xr, wr = z.clone().requires_grad_(), w.clone().requires_grad_(asked)
        losses.softmax_focal_loss(
            xr, y, gamma=2.0, axis=1, weight=wr, ignore_index=-100, reduction=reduction
        ).sum().backward()
        torch.testing.assert_close(x.grad, xr.grad, rtol=1e-12, atol=1e-15)
        assert (wc.grad is None) is (not asked)
        if asked:
            torch.testing.assert_close(wc.grad, wr.grad, rtol=1e-12, atol=1e-15)


def test_compiled_gradients_equal_the_op_eager_with_and_without_weight_gradient() -> None:
    """Under ``torch.compile(fullgraph=True)`` (the op in the graph), the gradients are
    the op's eager ones bit for bit, the weights' ``None`` where they require none."""
    z, y, w = _inputs()

    def f(x: Any, wc: Any) -> Any:
        return ct.softmax_focal_loss(x, y, gamma=2.0, weight=wc)

    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    for asked in (False, True):
        x, wc = z.clone().requires_grad_(), w.clone().requires_grad_(asked)
        compiled(x, wc).backward()
        xe, we = z.clone().requires_grad_(), w.clone().requires_grad_(asked)
        _ops.softmax_focal(xe, y, we, 2.0, -100, "mean").backward()
        assert torch.equal(x.grad, xe.grad)
        assert (wc.grad is None) is (not asked)
        if asked:
            assert torch.equal(wc.grad, we.grad)


@pytest.mark.parametrize("weight_grad", [False, True])
def test_backward_op_passes_opcheck(weight_grad: bool) -> None:
    z, y, w = _inputs()
    up = torch.ones((), dtype=torch.float64)
    args = (up, z, y, w, weight_grad, 2.0, -100, "mean")
    torch.library.opcheck(_ops.softmax_focal_backward, args)
    gx, gw = _ops.softmax_focal_backward(*args)
    assert gx.shape == z.shape
    assert gw.shape == (w.shape if weight_grad else (0,))
