"""``crossent.torch.binary_cross_entropy_with_logits``' float32 logit gradient where a soft
target meets :math:`\\sigma(x)`.

On main autograd differentiated the generic path's softplus terms in float32, so the
logits' gradient cancelled as ``F.binary_cross_entropy_with_logits``' does (the anchor):
thousands to billions of float32 ulps off. Its backward is now the exact gradient
(``_binary.BinaryFunction``), within an ulp of mpmath's per entry, under plain autograd,
``torch.func.grad``, ``vmap(grad)`` and ``jacfwd``; the targets' and weights'
gradients are their closed forms (``_binary.input_gradients``), the second derivative
autograd's of the formula.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import func  # noqa: E402

import crossent.torch as ct  # noqa: E402
from sigmoid_grad_oracle import exact_gradient, hard_entries, ulps_off  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # (jacfwd)

ULPS = 1.0
N = 300


def _data(seed: int) -> dict[str, Any]:
    data = hard_entries(N, pos_weight=True, eps=0.0, seed=seed)
    return {k: torch.from_numpy(v) for k, v in data.items()} | {"np": data}


def _exact_torch(data: dict[str, Any], reduction: str, upstream: Any = None) -> list[Any]:
    """mpmath's gradient of PyTorch's loss: its ``'mean'`` divides by the count."""
    options = {"weight": True, "pos_weight": True, "reduction": "sum"}
    truth = exact_gradient(data["np"], options)
    if reduction == "mean":
        truth = [v / N for v in truth]
    if upstream is not None:
        truth = [v * float(u) for v, u in zip(truth, upstream.tolist(), strict=True)]
    return truth


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_backward_within_an_ulp_and_the_anchor_far_off(reduction: str) -> None:
    data = _data(1)
    upstream = torch.rand(N, generator=torch.Generator().manual_seed(2))
    truth = _exact_torch(data, reduction, upstream if reduction == "none" else None)
    grads = {}
    functional = torch.nn.functional
    pairs = [("ours", ct.binary_cross_entropy_with_logits)]
    pairs += [("torch", functional.binary_cross_entropy_with_logits)]
    for name, fn in pairs:
        x = data["x"].clone().requires_grad_()
        loss = fn(x, data["t"], data["w"], pos_weight=data["pw"], reduction=reduction)
        loss.backward(upstream if reduction == "none" else None)
        assert x.grad is not None
        assert x.grad.dtype == torch.float32
        grads[name] = ulps_off(x.grad.numpy(), truth).max()
    assert grads["ours"] <= ULPS < 1000 < grads["torch"], grads


def test_torch_func_transforms_within_an_ulp() -> None:
    data = _data(3)
    t, w, pw = data["t"], data["w"], data["pw"]
    truth = _exact_torch(data, "mean")

    def loss(x: Any, target: Any) -> Any:
        return ct.binary_cross_entropy_with_logits(x, target, w, pos_weight=pw)

    x = data["x"]
    assert ulps_off(func.grad(loss)(x, t).numpy(), truth).max() <= ULPS
    assert ulps_off(func.jacfwd(loss)(x, t).numpy(), truth).max() <= ULPS
    assert ulps_off(func.jacrev(loss)(x, t).numpy(), truth).max() <= ULPS
    batched = func.vmap(func.grad(loss))(torch.stack([x, x]), torch.stack([t, t]))
    assert ulps_off(batched[1].numpy(), truth).max() <= ULPS


def test_other_gradients_and_second_derivative_are_the_formulas() -> None:
    """Targets, weights and ``pos_weight``: the float64 plain formula's partial
    derivatives within float32 rounding (``_binary.input_gradients``' closed forms; they
    were autograd's of the generic path's masked products, which gave 0 for a term
    absent from the loss: at a target 1 the :math:`-w\\,\\mathrm{sp}(x)` of the
    targets' gradient); the second derivative in the logits:
    :math:`w\\,(1 - t + \\pi t)\\,\\sigma(x)\\sigma(-x)`."""
    data = _data(4)
    x, t, w, pw = (data[k].clone().requires_grad_() for k in ("x", "t", "w", "pw"))
    loss = ct.binary_cross_entropy_with_logits(x, t, w, pos_weight=pw, reduction="sum")
    (gx,) = torch.autograd.grad(loss, x, create_graph=True)
    (hx,) = torch.autograd.grad(gx.sum(), x, retain_graph=True)
    got = torch.autograd.grad(loss, [t, w, pw])
    same = [data[k].double().requires_grad_() for k in ("t", "w", "pw")]
    logsig = torch.nn.functional.logsigmoid
    xd = data["x"].double()
    plain = -same[1] * (same[2] * same[0] * logsig(xd) + (1 - same[0]) * logsig(-xd))
    for g, want in zip(got, torch.autograd.grad(plain.sum(), same), strict=True):
        torch.testing.assert_close(g.double(), want, rtol=2e-6, atol=1e-5)
    x64, t64, w64, pw64 = (data[k].double() for k in ("x", "t", "w", "pw"))
    s = torch.sigmoid(x64)
    curvature = w64 * (1 - t64 + pw64 * t64) * s * (1 - s)
    torch.testing.assert_close(hx.double(), curvature, rtol=1e-4, atol=1e-6)
    # forward over reverse (func.hessian: jacfwd of the backward) counts it once
    hessian = func.hessian(
        lambda z: ct.binary_cross_entropy_with_logits(z, t.detach()[:40], reduction="sum")
    )(data["x"][:40])
    s40 = torch.sigmoid(x64[:40])
    want = torch.diag((1 - t64[:40] + t64[:40]) * s40 * (1 - s40))
    torch.testing.assert_close(hessian.double(), want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_logits_get_their_dtype_rounded_once(dtype: str) -> None:
    """float16 and bfloat16 logits and targets at :math:`\\sigma(x)` rounded to their
    dtype: the logits' gradient in that dtype, the exact one rounded once, within an ulp
    of it (on main float32's error showed: up to 1.1 float16 and 50 bfloat16 ulps)."""
    low = getattr(torch, dtype)
    n = 2000
    x = torch.randn(n, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    x = x.to(low).requires_grad_()
    t = torch.sigmoid(x.detach().double()).to(low)
    ct.binary_cross_entropy_with_logits(x, t, reduction="sum").backward()
    assert x.grad is not None
    assert x.grad.dtype == low
    exact = {"x": x.detach().float().numpy(), "t": t.float().numpy()}
    truth = np.array([float(v) for v in exact_gradient(exact, {"reduction": "sum"})])
    info = torch.finfo(low)
    size = np.abs(torch.from_numpy(truth).to(low).double().numpy())
    ulp = 2.0 ** np.floor(np.log2(np.maximum(size, float(info.smallest_normal)))) * info.eps
    assert (np.abs(x.grad.double().numpy() - truth) / ulp).max() <= ULPS
