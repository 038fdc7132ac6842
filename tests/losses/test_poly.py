"""Poly-1 loss against an independent float64 formula, its gradient under autograd."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import log_softmax

import crossent
from crossent import InputError

RNG = np.random.default_rng(2022)
Z = RNG.normal(size=(7, 5)) * 3
Y = RNG.integers(0, 5, size=7)
Y[3] = -100
W = RNG.uniform(0.2, 2.0, size=5)


def _reference(z: np.ndarray, y: np.ndarray, epsilon: float, weight: np.ndarray | None) -> tuple:
    """Per-row w_y (-log p_y + eps (1 - p_y)) and the weighted mean, from SciPy in float64."""
    keep = y != -100
    zk, yk = z[keep], y[keep]
    log_p_y = log_softmax(zk, axis=-1)[np.arange(len(yk)), yk]
    w_y = np.ones(len(yk)) if weight is None else weight[yk]
    rows = w_y * (-log_p_y + epsilon * (1 - np.exp(log_p_y)))
    per_row = np.zeros(len(y))
    per_row[keep] = rows
    return per_row, rows.sum() / w_y.sum()


@pytest.mark.parametrize("epsilon", [-1.0, 0.0, 1.0, 2.5])
@pytest.mark.parametrize("weight", [None, W])
def test_poly1_matches_the_float64_formula(epsilon: float, weight: np.ndarray | None) -> None:
    per_row, mean = _reference(Z, Y, epsilon, weight)
    options = {"epsilon": epsilon, "weight": weight, "ignore_index": -100}
    got = crossent.poly1_cross_entropy(Z, Y, reduction="none", **options)
    np.testing.assert_allclose(got, per_row, rtol=1e-13, atol=1e-15)
    assert crossent.poly1_cross_entropy(Z, Y, **options) == pytest.approx(mean, rel=1e-13)
    total = crossent.poly1_cross_entropy(Z, Y, reduction="sum", **options)
    assert total == pytest.approx(per_row.sum(), rel=1e-13)


def test_poly1_with_epsilon_zero_is_cross_entropy() -> None:
    options = {"weight": W, "ignore_index": -100}
    np.testing.assert_allclose(
        crossent.poly1_cross_entropy(Z, Y, epsilon=0.0, **options),
        crossent.softmax_cross_entropy(Z, Y, **options),
        rtol=1e-15,
    )
    np.testing.assert_allclose(
        crossent.poly1_cross_entropy_grad(Z, Y, epsilon=0.0, **options),
        crossent.softmax_cross_entropy_grad(Z, Y, **options),
        rtol=1e-14,
        atol=1e-16,
    )


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("epsilon", [-1.0, 1.0, 2.5])
def test_poly1_gradient_matches_autograd_of_an_independent_torch_formula(
    reduction: str, epsilon: float
) -> None:
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    z = torch.tensor(Z, requires_grad=True)
    y, w = torch.tensor(Y), torch.tensor(W)
    keep = y != -100
    zk, yk = z[keep], y[keep]
    ce = f.cross_entropy(zk, yk, reduction="none")
    p_y = f.softmax(zk, dim=-1).gather(1, yk[:, None])[:, 0]
    rows = w[yk] * (ce + epsilon * (1 - p_y))
    loss = rows.sum() / w[yk].sum() if reduction == "mean" else rows.sum()
    (expected,) = torch.autograd.grad(loss, z)
    got = crossent.poly1_cross_entropy_grad(
        Z, Y, epsilon=epsilon, weight=W, ignore_index=-100, reduction=reduction
    )
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("axis", [-1, 0])
def test_poly1_torch_autograd_equals_the_gradient_twin(axis: int) -> None:
    torch = pytest.importorskip("torch")
    logits = torch.tensor(
        [[60.0, 0.0, -math.inf, 1.0], [800.0, -800.0, 0.0, 2.0], [0.1, 0.2, 0.3, -0.4]],
        dtype=torch.float64,
    )
    labels = torch.tensor([0, 0, 2])
    if axis == 0:
        logits = logits.T.contiguous()
    z = logits.clone().requires_grad_(True)
    loss = crossent.poly1_cross_entropy(z, labels, epsilon=2.0, axis=axis)
    (autograd,) = torch.autograd.grad(loss, z)
    assert torch.isfinite(autograd).all()
    twin = crossent.poly1_cross_entropy_grad(logits, labels, epsilon=2.0, axis=axis)
    torch.testing.assert_close(twin, autograd, rtol=1e-12, atol=1e-15)


def test_poly1_limits() -> None:
    # Saturated and right: 0 loss and gradient; a -inf logit on the target: +inf loss, finite
    # gradient p - e_y (the poly factor 1 + eps p_y is 1 there); weight 0 makes it absent.
    assert crossent.poly1_cross_entropy([[800.0, -800.0]], [0]) == 0.0
    np.testing.assert_array_equal(crossent.poly1_cross_entropy_grad([[800.0, -800.0]], [0]), 0.0)
    assert crossent.poly1_cross_entropy([[0.0, -math.inf]], [1]) == math.inf
    np.testing.assert_array_equal(
        crossent.poly1_cross_entropy_grad([[0.0, -math.inf]], [1]), [[1.0, -1.0]]
    )
    z, w = [[0.0, -math.inf, 1.0], [2.0, 0.5, -1.0]], [1.0, 0.0, 1.0]
    row = crossent.poly1_cross_entropy(z[1:], [0])
    assert crossent.poly1_cross_entropy(z, [1, 0], weight=w) == pytest.approx(row, rel=1e-15)


def test_poly1_rejects_epsilon_below_minus_one() -> None:
    with pytest.raises(InputError, match="epsilon"):
        crossent.poly1_cross_entropy(Z, np.where(Y < 0, 0, Y), epsilon=-1.5)
