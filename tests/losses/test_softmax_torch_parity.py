"""softmax_cross_entropy against torch.nn.functional.cross_entropy, every option combination."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import crossent

from tolerances import CLOSED_FORM, LOW_PRECISION, ulps

torch = pytest.importorskip("torch")
F = torch.nn.functional

SHAPES = [(37, 11), (3, 50257), (1, 2), (64, 5)]
OPTIONS = list(
    itertools.product(
        [False, True],  # class weights
        [None, -100, 3],  # ignore_index
        [0.0, 0.1, 1.0],  # label smoothing
        ["mean", "sum", "none"],
    )
)


def _case(shape: tuple[int, int], ignore_index: int | None, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    n, c = shape
    logits = rng.normal(size=shape) * 3
    labels = rng.integers(0, c, size=n)
    if ignore_index is not None:
        labels[rng.random(n) < 0.3] = ignore_index
    weight = rng.uniform(0.1, 2.0, size=c)
    return logits, labels, weight


def _torch_loss(logits, labels, weight, ignore_index, smoothing, reduction):  # type: ignore[no-untyped-def]
    return F.cross_entropy(
        torch.from_numpy(logits),
        torch.from_numpy(labels),
        weight=None if weight is None else torch.from_numpy(weight),
        ignore_index=-100 if ignore_index is None else ignore_index,
        label_smoothing=smoothing,
        reduction=reduction,
    )


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize(("weighted", "ignore_index", "smoothing", "reduction"), OPTIONS)
def test_loss_and_gradient_match_torch_float64(
    shape: tuple[int, int],
    weighted: bool,
    ignore_index: int | None,
    smoothing: float,
    reduction: str,
) -> None:
    logits, labels, weight = _case(shape, ignore_index, seed=hash((shape, weighted)) % 2**32)
    w = weight if weighted else None
    options = dict(
        weight=w, ignore_index=ignore_index, label_smoothing=smoothing, reduction=reduction
    )
    z = torch.from_numpy(logits).requires_grad_(True)
    expected = F.cross_entropy(
        z,
        torch.from_numpy(labels),
        weight=None if w is None else torch.from_numpy(w),
        ignore_index=-100 if ignore_index is None else ignore_index,
        label_smoothing=smoothing,
        reduction=reduction,
    )
    got = crossent.softmax_cross_entropy(logits, labels, **options)
    if torch.isnan(expected).any():
        # torch's mean over zero non-ignored rows is 0/0; crossent's is 0
        assert reduction == "mean"
        assert got == 0.0
        return
    np.testing.assert_allclose(got, expected.detach().numpy(), **CLOSED_FORM.tol())
    (expected_grad,) = torch.autograd.grad(expected.sum(), z)
    grad = crossent.softmax_cross_entropy_grad(logits, labels, **options)
    # torch's float64 softmax over 50k classes is off by up to 1.4e3 ulps of the largest
    # entry (measured); 2**14 ulps of it leaves a 10x margin
    scale = float(np.abs(expected_grad.numpy()).max())
    np.testing.assert_allclose(
        grad, expected_grad.numpy(), rtol=CLOSED_FORM.rtol, atol=ulps(2**14, scale=scale)
    )


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_low_precision_logits_return_float32_within_torch_float32_accuracy(dtype: str) -> None:
    logits64, labels, weight = _case((37, 11), None, seed=1)
    logits = torch.from_numpy(logits64).to(getattr(torch, dtype))
    got = crossent.softmax_cross_entropy(
        logits,
        torch.from_numpy(labels),
        label_smoothing=0.1,
        weight=torch.from_numpy(weight).float(),
    )
    assert got.dtype == torch.float32
    exact = F.cross_entropy(
        logits.double(),
        torch.from_numpy(labels),
        label_smoothing=0.1,
        weight=torch.from_numpy(weight),
    )
    torch.testing.assert_close(got.double(), exact, **LOW_PRECISION.tol(torch.float32))


def test_torch_layout_with_class_axis_1() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(4, 7, 5, 3))  # (N, C, d1, d2)
    labels = rng.integers(0, 7, size=(4, 5, 3))
    z = torch.from_numpy(logits).requires_grad_(True)
    expected = F.cross_entropy(z, torch.from_numpy(labels), label_smoothing=0.2)
    got = crossent.softmax_cross_entropy(logits, labels, axis=1, label_smoothing=0.2)
    np.testing.assert_allclose(got, expected.item(), rtol=CLOSED_FORM.rtol)
    (expected_grad,) = torch.autograd.grad(expected, z)
    grad = crossent.softmax_cross_entropy_grad(logits, labels, axis=1, label_smoothing=0.2)
    np.testing.assert_allclose(grad, expected_grad.numpy(), **CLOSED_FORM.tol())


def test_soft_targets_without_weights_match_torch() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(9, 6))
    targets = rng.dirichlet(np.ones(6), size=9)
    for smoothing in (0.0, 0.3):
        expected = F.cross_entropy(
            torch.from_numpy(logits), torch.from_numpy(targets), label_smoothing=smoothing
        )
        got = crossent.softmax_cross_entropy_with_targets(
            logits, targets, label_smoothing=smoothing
        )
        np.testing.assert_allclose(got, expected.item(), rtol=CLOSED_FORM.rtol)


def test_torch_tensors_in_torch_tensors_out_with_autograd() -> None:
    z = torch.randn(
        5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True
    )
    y = torch.tensor([0, 3, 1, 1, 2])
    loss = crossent.softmax_cross_entropy(z, y, label_smoothing=0.1, z_loss=1e-3, soft_cap=5.0)
    assert isinstance(loss, torch.Tensor)
    (autograd,) = torch.autograd.grad(loss, z)
    ours = crossent.softmax_cross_entropy_grad(
        z.detach(), y, label_smoothing=0.1, z_loss=1e-3, soft_cap=5.0
    )
    torch.testing.assert_close(ours, autograd, **CLOSED_FORM.tol())


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_at_50k_classes_is_no_worse_than_torch_in_that_dtype(dtype: str) -> None:
    # |z| up to 20, V = 50k: loss and gradient against the float64 truth of the same
    # (rounded) logits; torch computes in the low-precision dtype and rounds to it.
    generator = torch.Generator().manual_seed(0)
    logits = (torch.rand(64, 50_000, generator=generator, dtype=torch.float64) * 40 - 20).to(
        getattr(torch, dtype)
    )
    labels = torch.randint(0, 50_000, (64,), generator=generator)
    exact = logits.double().requires_grad_(True)
    truth = F.cross_entropy(exact, labels, label_smoothing=0.1)
    (truth_grad,) = torch.autograd.grad(truth, exact)
    theirs = logits.clone().requires_grad_(True)
    their_loss = F.cross_entropy(theirs, labels, label_smoothing=0.1)
    (their_grad,) = torch.autograd.grad(their_loss, theirs)
    ours = crossent.softmax_cross_entropy(logits, labels, label_smoothing=0.1)
    our_grad = crossent.softmax_cross_entropy_grad(logits, labels, label_smoothing=0.1)
    assert ours.dtype == torch.float32
    assert our_grad.dtype == torch.float32
    our_error = abs(ours.double() - truth).item()
    their_error = abs(their_loss.double() - truth).item()
    assert our_error <= their_error
    assert our_error <= 1e-6 * truth.item()  # float32 accuracy, whatever the input dtype
    assert (our_grad.double() - truth_grad).abs().max() <= (
        their_grad.double() - truth_grad
    ).abs().max()
