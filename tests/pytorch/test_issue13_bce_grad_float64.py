"""``crossent.torch.binary_cross_entropy_with_logits``' float64 logit gradient where a
soft target meets :math:`\\sigma(x)`.

On main float64 logits took autograd of the generic path's softplus terms: the logits'
gradient :math:`(1-t)\\sigma(x) - \\pi t\\sigma(-x)` cancelled in float64 as
``F.binary_cross_entropy_with_logits``' does, up to :math:`10^{17}` float64 ulps off on
targets at :math:`fl(\\sigma(x))` and beside it. Float64 tensors now take
``_binary.BinaryFunction`` too: within 4 float64 ulps of mpmath's per entry under plain
autograd (each reduction, an upstream gradient for ``'none'``) and ``torch.func.grad``
(whose tensors cannot be read: every entry through the careful numerator); float32 within
one float32 ulp beside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import func  # noqa: E402

import crossent.torch as ct  # noqa: E402
from sigmoid_grad_oracle import at_sigma_entries, exact_gradient_wide, ulps_off  # noqa: E402

N = 300
ULPS = {np.float64: 4.0, np.float32: 1.0}
TINY = {np.float64: 2.0**-1074, np.float32: 2.0**-149}
OPTIONS = {"weight": True, "pos_weight": True, "reduction": "sum"}


def _truth(data: dict[str, np.ndarray], reduction: str, upstream: Any = None) -> list[Any]:
    """mpmath's gradient of PyTorch's loss: its ``'mean'`` divides by the count."""
    truth = exact_gradient_wide(data, OPTIONS)
    if reduction == "mean":
        truth = [v / N for v in truth]
    if upstream is not None:
        truth = [v * float(u) for v, u in zip(truth, upstream.tolist(), strict=True)]
    return truth


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_float64_backward_within_a_few_ulps_and_the_anchor_far_off(reduction: str) -> None:
    for dtype in (np.float64, np.float32):
        data = at_sigma_entries(N, dtype, pos_weight=True, eps=0.0, seed=1)
        x, t, w, pw = (torch.from_numpy(data[k]) for k in ("x", "t", "w", "pw"))
        upstream = torch.rand(N, generator=torch.Generator().manual_seed(2), dtype=x.dtype)
        truth = _truth(data, reduction, upstream if reduction == "none" else None)
        grads = {}
        pairs = [("ours", ct.binary_cross_entropy_with_logits)]
        pairs += [("torch", torch.nn.functional.binary_cross_entropy_with_logits)]
        for name, fn in pairs:
            z = x.clone().requires_grad_()
            loss = fn(z, t, w, pos_weight=pw, reduction=reduction)
            loss.backward(upstream if reduction == "none" else None)
            grads[name] = ulps_off(z.grad.numpy(), truth, tiny=TINY[dtype], dtype=dtype)
        assert grads["ours"].max() <= ULPS[dtype], (np.dtype(dtype).name, grads["ours"].max())
        assert grads["torch"].max() > 1000


def test_float64_func_grad_within_a_few_ulps() -> None:
    """``torch.func.grad`` (no values to read: the careful numerator on every entry)."""
    for dtype in (np.float64, np.float32):
        data = at_sigma_entries(N, dtype, pos_weight=True, eps=0.0, seed=3)
        x, t, w, pw = (torch.from_numpy(data[k]) for k in ("x", "t", "w", "pw"))

        def loss(z: Any, t: Any = t, w: Any = w, pw: Any = pw) -> Any:
            return ct.binary_cross_entropy_with_logits(z, t, w, pos_weight=pw, reduction="sum")

        got = func.grad(loss)(x)
        off = ulps_off(got.numpy(), _truth(data, "sum"), tiny=TINY[dtype], dtype=dtype)
        assert off.max() <= ULPS[dtype], (np.dtype(dtype).name, off.max())
