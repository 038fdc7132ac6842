"""Issue 13: ``crossent.torch``'s CPU backward read the labels' range again.

The fused CPU path (float32, float16, bfloat16 logits) checked the labels in the
forward op (``check_class_ids``) and then, in the backward, ran the losses package's
range check over the same labels once more (``check_labels``: a min/max pass, 0.25 ms
per 10**6 labels, 0.95 ms with ``ignore_index`` rows, on a 34 ms backward at V = 2).
They are the tensor the forward checked, saved by ``save_for_backward`` (an in-place
change since is autograd's error, pinned below), so the backward no longer reads them.

On main the first test fails (one range pass per backward); the others pin that a bad
label is still refused, by the forward, with the torch wording, and that the gradient
is unchanged (against ``F.cross_entropy`` of the float64 logits).
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("crossent.torch")
F = torch.nn.functional

from crossent.errors import InputError  # noqa: E402
from crossent.losses import _batch  # noqa: E402

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def _case(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(13)
    z = (torch.randn(64, 7, generator=g) * 2).to(dtype)
    y = torch.randint(0, 7, (64,), generator=g)
    y[::9] = -100
    return z, y


class _RangePasses:
    """Counts the losses package's label range passes (``check_labels`` with a range)."""

    def __init__(self) -> None:
        self.count = 0
        self._check = _batch.check_labels

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.count += bool(kwargs.get("check_range", True))
        self._check(*args, **kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_backward_reads_no_label_range(dtype: torch.dtype, weighted: bool) -> None:
    z, y = _case(dtype)
    w = torch.rand(7, generator=torch.Generator().manual_seed(1)) + 0.5 if weighted else None
    leaf = z.clone().requires_grad_()
    loss = ct.cross_entropy(leaf, y, weight=w, label_smoothing=0.1)
    passes = _RangePasses()
    with mock.patch.object(_batch, "check_labels", passes):
        loss.backward()
    assert passes.count == 0
    assert leaf.grad is not None
    assert bool(torch.isfinite(leaf.grad).all())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("row", "label"), [(5, 7), (63, -1), (0, 2**40)])
def test_bad_label_still_refused(dtype: torch.dtype, row: int, label: int) -> None:
    z, y = _case(dtype)
    y[row] = label
    with pytest.raises(InputError, match=rf"`target` must be class ids .*row {row} has {label}"):
        ct.cross_entropy(z.clone().requires_grad_(), y)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradient_unchanged(dtype: torch.dtype) -> None:
    z, y = _case(dtype)
    leaf = z.clone().requires_grad_()
    ct.cross_entropy(leaf, y, label_smoothing=0.1, reduction="sum").backward()
    ref = z.double().requires_grad_()
    F.cross_entropy(ref, y, label_smoothing=0.1, reduction="sum").backward()
    # The gradient is rounded once to the logits' dtype: within one of its ulps.
    tol = torch.finfo(dtype).eps
    assert leaf.grad is not None
    assert ref.grad is not None
    torch.testing.assert_close(leaf.grad.double(), ref.grad, rtol=tol, atol=tol)


def test_labels_changed_in_place_after_forward_refused() -> None:
    """Why the backward may trust the forward's check: autograd refuses saved labels
    changed in place (here to a label out of range) before the backward."""
    z, y = _case(torch.float32)
    leaf = z.clone().requires_grad_()
    loss = ct.cross_entropy(leaf, y)
    y[3] = 99
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
