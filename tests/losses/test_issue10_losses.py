"""Regression tests for issue 10's loss items (7, 9 and 12), each named after its item."""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent

INF = math.inf
Z7 = [[0.0, -INF, 1.0], [2.0, 0.5, -1.0]]
W7 = [1.0, 0.0, 1.0]
ONE_HOT7 = [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]


def _second_row_ce() -> float:
    """The loss of the only row that counts: -log softmax([2, .5, -1])[0], in float64."""
    z = np.array([2.0, 0.5, -1.0])
    return float(np.log(np.exp(z).sum()) - z[0])


# ------------------------------------------------------------------------------ item 7


@pytest.mark.parametrize("dtype", [np.float64, np.float32])  # float32: the fused kernels
def test_issue10_item7_zero_weight_class_with_inf_logit(dtype: type) -> None:
    z = np.array(Z7, dtype=dtype)
    loss = crossent.softmax_cross_entropy(z, [1, 0], weight=np.array(W7, dtype=dtype))
    targets = crossent.softmax_cross_entropy_with_targets(
        z, np.array(ONE_HOT7, dtype=dtype), weight=np.array(W7, dtype=dtype)
    )
    assert float(loss) == pytest.approx(_second_row_ce(), rel=1e-6)
    assert float(loss) == pytest.approx(0.2413, abs=1e-4)
    assert float(loss) == pytest.approx(float(targets), rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.0, "z_loss": 1e-3}])
def test_issue10_item7_zero_weight_class_gradient(dtype: type, options: dict) -> None:
    z = np.array(Z7, dtype=dtype)
    w = np.array(W7, dtype=dtype)
    grad = crossent.softmax_cross_entropy_grad(z, [1, 0], weight=w, **options)
    expected = crossent.softmax_cross_entropy_with_targets_grad(
        z, np.array(ONE_HOT7, dtype=dtype), weight=w, **options
    )
    assert np.isfinite(grad).all()
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(grad[0], 0.0)  # the absent row pulls nothing


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_issue10_item7_softmax_focal_zero_weight_class(gamma: float) -> None:
    loss = crossent.softmax_focal_loss(Z7, [1, 0], weight=W7, gamma=gamma)
    p = np.exp([2.0, 0.5, -1.0]) / np.exp([2.0, 0.5, -1.0]).sum()
    assert float(loss) == pytest.approx((1 - p[0]) ** gamma * _second_row_ce(), rel=1e-12)
    grad = crossent.softmax_focal_loss_grad(Z7, [1, 0], weight=W7, gamma=gamma)
    assert np.isfinite(grad).all()
    np.testing.assert_array_equal(grad[0], 0.0)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_issue10_item7_sibling_focal_gradient_at_a_target_of_probability_zero(
    gamma: float,
) -> None:
    # The limit p_y -> 0 of w (1 - p_y)^gamma (p - e_y)(1 - gamma p_y log p_y / (1 - p_y)) is
    # p - e_y: the gradient was NaN (0 * -inf) though the loss (+inf) is defined.
    z = [[0.0, -INF, 1.0]]
    grad = crossent.softmax_focal_loss_grad(z, [1], gamma=gamma)
    p = np.exp([0.0, -INF, 1.0]) / np.exp([0.0, -INF, 1.0]).sum()
    np.testing.assert_allclose(grad, [p - [0.0, 1.0, 0.0]], rtol=1e-12, atol=1e-15)
    assert float(crossent.softmax_focal_loss(z, [1], gamma=gamma)) == INF


# ------------------------------------------------------------------------------ item 9


def test_issue10_item9_temperature_below_one_huge_float64_logits() -> None:
    z = [[1e308, 0.0]]
    loss = crossent.softmax_cross_entropy(z, [0], temperature=0.5)
    grad = crossent.softmax_cross_entropy_grad(z, [0], temperature=0.5)
    assert float(loss) == 0.0
    np.testing.assert_array_equal(grad, [[0.0, 0.0]])
    soft = crossent.softmax_cross_entropy_with_targets(z, [[1.0, 0.0]], temperature=0.5)
    assert float(soft) == 0.0
    # The other label: exactly (1e308 - 0) / 0.5, which overflows to +inf (not NaN)
    assert float(crossent.softmax_cross_entropy(z, [1], temperature=0.5)) == INF


def test_issue10_item9_temperature_below_one_huge_float32_torch_logits() -> None:
    torch = pytest.importorskip("torch")
    z = torch.tensor([[3e38, 0.0]], dtype=torch.float32)
    y = torch.tensor([0])
    assert float(crossent.softmax_cross_entropy(z, y, temperature=0.5)) == 0.0
    grad = crossent.softmax_cross_entropy_grad(z, y, temperature=0.5)
    assert torch.equal(grad, torch.zeros_like(z))
    focal_free = crossent.softmax_cross_entropy(z, y, temperature=0.5, label_smoothing=0.1)
    # smoothing puts mass 0.05 on a class 6e38 below: 0.05 * 6e38 = 3e37, finite in
    # float32 (it was +inf before the far rows were formed again on the host; NumPy's
    # float32 gives the same)
    assert float(focal_free) == pytest.approx(3e37, rel=2**-23)
    expected = crossent.softmax_cross_entropy(
        z.numpy(), y.numpy(), temperature=0.5, label_smoothing=0.1
    )
    assert float(focal_free) == pytest.approx(float(expected), rel=2**-23)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_issue10_item9_distillation_temperature_below_one_huge_logits(direction: str) -> None:
    student = [[1e308, 0.0]]
    loss = crossent.distillation_loss(
        student, [[1.0, 0.0]], teacher_form="probs", temperature=0.5, direction=direction
    )
    assert float(loss) == 0.0
    grad = crossent.distillation_loss_grad(
        student, [[1.0, 0.0]], teacher_form="probs", temperature=0.5, direction=direction
    )
    np.testing.assert_array_equal(grad, [[0.0, 0.0]])


def test_issue10_item9_distillation_huge_float32_torch_logits() -> None:
    torch = pytest.importorskip("torch")
    student = torch.tensor([[3e38, 0.0]], dtype=torch.float32)
    teacher = torch.tensor([[3e38, -3e38]], dtype=torch.float32)
    assert float(crossent.distillation_loss(student, teacher, temperature=0.5)) == 0.0


# ----------------------------------------------------------------------------- item 12


@pytest.mark.parametrize("variant", ["crammer_singer", "weston_watkins"])
def test_issue10_item12_hinge_target_logit_minus_inf(variant: str) -> None:
    z = [[0.0, -INF, -INF]]
    assert float(crossent.multiclass_hinge_loss(z, [1], variant=variant)) == INF
    grad = crossent.multiclass_hinge_loss_grad(z, [1], variant=variant)
    # the finite rival violates (by +inf); the -inf rival does not
    np.testing.assert_array_equal(grad, [[1.0, -1.0, 0.0]])


def test_issue10_item12_hinge_minus_inf_rival_beside_finite_target_unchanged() -> None:
    z = [[0.5, -INF, 0.0]]
    loss = crossent.multiclass_hinge_loss(z, [0], variant="weston_watkins")
    assert float(loss) == pytest.approx(0.5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_issue10_item7_sibling_full_smoothing_with_label_logit_minus_inf(dtype: type) -> None:
    # label_smoothing=1: the label's own coefficient (1 - eps) w_y is 0, so sigma_y = -inf is
    # absent; the uniform part sees the -inf class (weight 0 here: absent too).
    z = np.array([[-INF, 0.0, 1.0]], dtype=dtype)
    w = np.array([0.0, 1.0, 1.0], dtype=dtype)
    loss = crossent.softmax_cross_entropy(z, [0], weight=w, label_smoothing=1.0, reduction="sum")
    log_p = np.array([0.0, 1.0]) - np.log(np.exp([0.0, 1.0]).sum())
    assert float(loss) == pytest.approx(-log_p.sum() / 3, rel=1e-6)
    unweighted = crossent.softmax_cross_entropy(z, [0], label_smoothing=1.0)
    assert float(unweighted) == INF
