"""Issue 13 (branch leftovers14): ``'mean'`` with nothing to average is 0 with a zero
gradient, on NumPy and torch alike, where PyTorch's (and torchvision's) is NaN: the focal
losses of an empty batch, and the softmax losses whose labels all have class weight 0
with label smoothing (whose rows still have a loss). A guard of documented behaviour
(the focal losses' and ``label_smoothing``'s docstrings): it passes on main; a
``weighted_mean`` of ``total / normalizer`` (no zero case) fails it.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import crossent  # noqa: E402
import crossent.torch as ct  # noqa: E402

Z = np.array([[0.3, -1.0, 2.0], [1.0, 0.5, -0.2]])
LABELS, WEIGHT = np.array([0, 1]), np.array([0.0, 0.0, 1.0])


def _torch_mean_and_grad(loss, x: np.ndarray, *args: object) -> tuple[float, np.ndarray]:  # type: ignore[no-untyped-def]
    leaf = torch.tensor(x, requires_grad=True)
    mean = loss(leaf, *args)
    (grad,) = torch.autograd.grad(mean, leaf)
    return float(mean.detach()), grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_focal_mean_of_an_empty_batch(dtype: type) -> None:
    x, t, y = np.zeros((0, 3), dtype), np.zeros((0, 3), dtype), np.zeros(0, np.int64)
    assert float(crossent.sigmoid_focal_loss(x, t)) == 0.0
    assert float(crossent.softmax_focal_loss(x, y)) == 0.0
    for value, grad in (
        _torch_mean_and_grad(
            lambda a, b: ct.sigmoid_focal_loss(a, b, reduction="mean"), x, torch.tensor(t)
        ),
        _torch_mean_and_grad(ct.softmax_focal_loss, x, torch.tensor(y)),
    ):
        assert value == 0.0
        assert grad.shape == (0, 3)


def test_mean_of_labels_of_weight_zero() -> None:
    w = torch.tensor(WEIGHT)
    smoothed = {"weight": WEIGHT, "label_smoothing": 0.1}
    assert float(crossent.softmax_cross_entropy(Z, LABELS, **smoothed, reduction="sum")) > 0.0
    assert float(crossent.softmax_cross_entropy(Z, LABELS, **smoothed)) == 0.0
    assert not crossent.softmax_cross_entropy_grad(Z, LABELS, **smoothed).any()
    assert float(crossent.softmax_focal_loss(Z, LABELS, weight=WEIGHT)) == 0.0
    y = torch.tensor(LABELS)
    for loss in (
        lambda a: ct.cross_entropy(a, y, weight=w, label_smoothing=0.1),
        lambda a: ct.linear_cross_entropy(
            a, torch.eye(3, dtype=a.dtype), y, weight=w, label_smoothing=0.1
        ),
        lambda a: ct.softmax_focal_loss(a, y, weight=w),
    ):
        value, grad = _torch_mean_and_grad(loss, Z)
        assert value == 0.0
        assert not grad.any()
