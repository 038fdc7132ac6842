"""A hostile pass over the Array-API promise (array-api-strict, JAX, PyTorch through the
top-level API): each test is named after the bug it pins and fails on the code before
its fix."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import crossent

_WEIGHTED = {
    "softmax_cross_entropy": lambda x, y, t, w: crossent.softmax_cross_entropy(
        x, y, weight=w, label_smoothing=0.1
    ),
    "softmax_cross_entropy_grad": lambda x, y, t, w: crossent.softmax_cross_entropy_grad(
        x, y, weight=w
    ),
    "softmax_cross_entropy_with_targets": lambda x, y, t, w: (
        crossent.softmax_cross_entropy_with_targets(x, t, weight=w)
    ),
    "sigmoid_cross_entropy": lambda x, y, t, w: crossent.sigmoid_cross_entropy(
        x, (t > 0.25).to(x.dtype), weight=w, pos_weight=w
    ),
    "sigmoid_focal_loss_grad": lambda x, y, t, w: crossent.sigmoid_focal_loss_grad(
        x, (t > 0.25).to(x.dtype), weight=w
    ),
    "softmax_focal_loss": lambda x, y, t, w: crossent.softmax_focal_loss(x, y, weight=w),
    "poly1_cross_entropy_grad": lambda x, y, t, w: crossent.poly1_cross_entropy_grad(
        x, y, weight=w
    ),
}


@pytest.mark.parametrize("scale", [1.0, 1e40])
@pytest.mark.parametrize("name", list(_WEIGHTED))
def test_weights_that_require_grad_are_read_without_autograd_warning(
    name: str, scale: float
) -> None:
    """Learnable class weights (a tensor with ``requires_grad=True``) were read on the
    host with ``float(tensor)`` to decide on a power-of-two rescaling: PyTorch warns
    "Converting a tensor with requires_grad=True to a scalar" on every weighted call
    (an error under ``-W error``). The weights' values, not their graph, are read; the
    loss still carries the gradient to the weights."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(6, 4)) * 2).requires_grad_(True)
    y = torch.from_numpy(rng.integers(0, 4, size=6))
    t = torch.from_numpy(rng.dirichlet(np.ones(4), size=6))
    w = (torch.arange(1.0, 5.0, dtype=torch.float64) * scale).requires_grad_(True)
    always = torch.is_warn_always_enabled()
    torch.set_warn_always(True)  # the warning is TORCH_WARN_ONCE: seen once per process
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = _WEIGHTED[name](x, y, t, w)
    finally:
        torch.set_warn_always(always)
    expected = _WEIGHTED[name](x.detach(), y, t, w.detach())
    np.testing.assert_allclose(got.detach().numpy(), expected.numpy(), rtol=1e-15, atol=0)
    if not name.endswith("_grad"):
        got.sum().backward()
        assert w.grad is not None
        assert bool(torch.all(torch.isfinite(w.grad)))


def test_report_refuses_a_meta_tensor_with_the_projects_error() -> None:
    """``report`` on a meta tensor raised PyTorch's raw ``NotImplementedError`` ("Cannot
    copy out of meta tensor") where every evaluation function raises
    :class:`InputTypeError` naming the argument."""
    torch = pytest.importorskip("torch")
    probs = torch.full((5, 3), 1 / 3, device="meta")
    labels = torch.zeros(5, dtype=torch.int64)
    with pytest.raises(crossent.InputTypeError, match="`predictions` is a meta tensor"):
        crossent.report(probs, labels)
    with pytest.raises(crossent.InputTypeError, match="`labels` is a meta tensor"):
        crossent.report(torch.full((5, 3), 1 / 3), labels.to("meta"))
