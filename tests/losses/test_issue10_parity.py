"""Issue 10: the torch-parity edge case the old skip hid: every row ignored, with class weights."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import crossent
from crossent.losses import _cpu_kernels

torch = pytest.importorskip("torch")
F = torch.nn.functional

CASES = list(
    itertools.product(
        [(1, 2), (6, 2), (5, 3), (4, 7)],  # 3 is not a class for the first three shapes
        [3, -100],
        [0.0, 0.1, 1.0],
        ["mean", "sum", "none"],
    )
)


@pytest.mark.parametrize("path", ["fused", "generic"])
@pytest.mark.parametrize(("shape", "ignore_index", "smoothing", "reduction"), CASES)
def test_issue10_tests_every_row_ignored_with_class_weights(
    shape: tuple[int, int],
    ignore_index: int,
    smoothing: float,
    reduction: str,
    path: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if path == "generic":
        monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    logits = (rng.normal(size=shape) * 3).astype(np.float32)
    labels = np.full(shape[0], ignore_index)
    weight = rng.uniform(0.1, 2.0, size=shape[1]).astype(np.float32)
    options = dict(
        weight=weight, ignore_index=ignore_index, label_smoothing=smoothing, reduction=reduction
    )
    z = torch.from_numpy(logits.astype(np.float64)).requires_grad_(True)
    expected = F.cross_entropy(
        z,
        torch.from_numpy(labels),
        weight=torch.from_numpy(weight.astype(np.float64)),
        ignore_index=ignore_index,
        label_smoothing=smoothing,
        reduction=reduction,
    )
    got = np.asarray(crossent.softmax_cross_entropy(logits, labels, **options))
    grad = np.asarray(crossent.softmax_cross_entropy_grad(logits, labels, **options))
    assert got.dtype == np.float32
    assert grad.dtype == np.float32
    # torch's weighted mean over no rows is 0/0 = NaN; crossent's is 0 (an empty sum);
    # "sum" and "none" agree with torch exactly: no term, no gradient.
    if reduction == "mean":
        assert torch.isnan(expected)
        np.testing.assert_array_equal(got, np.float32(0.0))
    else:
        np.testing.assert_array_equal(got, expected.detach().numpy().astype(np.float32))
        (expected_grad,) = torch.autograd.grad(expected.sum(), z)
        np.testing.assert_array_equal(grad, expected_grad.numpy().astype(np.float32))
    np.testing.assert_array_equal(grad, np.zeros(shape, dtype=np.float32))
    assert not np.signbit(got).any()
