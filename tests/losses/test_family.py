"""Sigmoid cross-entropy, focal losses, distillation and hinge: oracles, gradients, limits."""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent
from crossent import InputError

from conftest import Backend
from finite_differences import finite_difference
from tolerances import CLOSED_FORM, FINITE_DIFFERENCE, ROUNDING, SUM, ulps

RNG = np.random.default_rng(21)
X = RNG.normal(size=(7, 4)) * 3  # logits
T = RNG.integers(0, 2, size=(7, 4)).astype(float)
SOFT = RNG.uniform(size=(7, 4))
W = RNG.uniform(0.2, 2.0, size=4)
POS = RNG.uniform(0.5, 3.0, size=4)
Z = RNG.normal(size=(6, 5)) * 2
Y = np.array([0, 4, 2, 2, 1, 3])
V = RNG.normal(size=(6, 5)) * 2  # teacher logits


def _naive_bce(
    x: np.ndarray, t: np.ndarray, w: np.ndarray | float = 1.0, pos: np.ndarray | float = 1.0
) -> np.ndarray:
    p = 1 / (1 + np.exp(-x))
    return -w * (pos * t * np.log(p) + (1 - t) * np.log(1 - p))


# ------------------------------------------------------------------------------ sigmoid


def test_sigmoid_cross_entropy_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    f = torch.nn.functional.binary_cross_entropy_with_logits
    x, t, w, pos = (torch.from_numpy(a) for a in (X, SOFT, W, POS))
    for reduction in ("none", "sum"):
        expected = f(x, t, weight=w, pos_weight=pos, reduction=reduction).numpy()
        got = crossent.sigmoid_cross_entropy(X, SOFT, weight=W, pos_weight=POS, reduction=reduction)
        np.testing.assert_allclose(got, expected, rtol=SUM.rtol)
    # unweighted means agree; weighted means are sum(w l) / sum(w) here, sum / count there
    np.testing.assert_allclose(
        crossent.sigmoid_cross_entropy(X, SOFT, pos_weight=POS),
        f(x, t, pos_weight=pos).item(),
        rtol=SUM.rtol,
    )
    weighted = crossent.sigmoid_cross_entropy(X, SOFT, weight=W)
    np.testing.assert_allclose(
        weighted, f(x, t, weight=w, reduction="sum").item() / (W.sum() * X.shape[0]), rtol=SUM.rtol
    )


@pytest.mark.parametrize(
    "options", [{}, {"weight": W, "pos_weight": POS}, {"label_smoothing": 0.2}, {"base": 2}]
)
def test_sigmoid_gradient_matches_finite_differences(options: dict) -> None:
    grad = crossent.sigmoid_cross_entropy_grad(X, SOFT, **options)
    fd = finite_difference(lambda x: float(crossent.sigmoid_cross_entropy(x, SOFT, **options)), X)
    np.testing.assert_allclose(grad, fd, **FINITE_DIFFERENCE.tol())


def test_sigmoid_label_smoothing_and_limits() -> None:
    eps = 0.1
    np.testing.assert_allclose(
        crossent.sigmoid_cross_entropy(X, T, label_smoothing=eps, reduction="none"),
        _naive_bce(X, (1 - eps) * T + eps / 2),
        rtol=CLOSED_FORM.rtol,
    )
    big = np.array([1e4, -1e4, 1e4, -1e4, np.inf, -np.inf, np.inf])
    t = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    got = crossent.sigmoid_cross_entropy(big, t, reduction="none")
    np.testing.assert_array_equal(got, [0.0, 0.0, 1e4, 1e4, 0.0, 0.0, np.inf])
    grad = crossent.sigmoid_cross_entropy_grad(big, t, reduction="none")
    np.testing.assert_array_equal(grad, [0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 1.0])


def test_sigmoid_errors() -> None:
    with pytest.raises(InputError, match=r"`targets` must be probabilities in \[0, 1\]; got 2\.0"):
        crossent.sigmoid_cross_entropy([0.0], [2.0])
    with pytest.raises(InputError, match=r"`logits` contains NaN at index 1"):
        crossent.sigmoid_cross_entropy([0.0, math.nan], [1.0, 0.0])
    with pytest.raises(InputError, match="must have the same shape"):
        crossent.sigmoid_cross_entropy([0.0, 1.0], [1.0])
    with pytest.raises(InputError, match=r"`pos_weight` of shape \(3,\) must broadcast"):
        crossent.sigmoid_cross_entropy(X, T, pos_weight=[1.0, 2.0, 3.0])
    with pytest.raises(InputError, match=r"`weight` must be finite and non-negative; got -1\.0"):
        crossent.sigmoid_cross_entropy(X, T, weight=[1.0, -1.0, 1.0, 1.0])


# -------------------------------------------------------------------------------- focal


@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_sigmoid_focal_matches_its_definition(gamma: float, alpha: float | None) -> None:
    p = 1 / (1 + np.exp(-X))
    p_t = p * SOFT + (1 - p) * (1 - SOFT)
    expected = _naive_bce(X, SOFT) * (1 - p_t) ** gamma
    if alpha is not None:
        expected = expected * (alpha * SOFT + (1 - alpha) * (1 - SOFT))
    got = crossent.sigmoid_focal_loss(X, SOFT, gamma=gamma, alpha=alpha, reduction="none")
    np.testing.assert_allclose(got, expected, rtol=CLOSED_FORM.rtol)
    grad = crossent.sigmoid_focal_loss_grad(X, SOFT, gamma=gamma, alpha=alpha)
    fd = finite_difference(
        lambda x: float(crossent.sigmoid_focal_loss(x, SOFT, gamma=gamma, alpha=alpha)), X
    )
    np.testing.assert_allclose(grad, fd, **FINITE_DIFFERENCE.tol())


def test_sigmoid_focal_gamma_zero_is_cross_entropy() -> None:
    np.testing.assert_allclose(
        crossent.sigmoid_focal_loss(X, T, gamma=0.0),
        crossent.sigmoid_cross_entropy(X, T),
        rtol=ulps(5),
    )
    np.testing.assert_allclose(
        crossent.sigmoid_focal_loss_grad(X, T, gamma=0.0),
        crossent.sigmoid_cross_entropy_grad(X, T),
        rtol=ROUNDING.rtol,
    )


@pytest.mark.parametrize("gamma", [0.25, 0.5, 2.0])
def test_focal_gradients_are_finite_for_saturated_logits(gamma: float) -> None:
    x = np.array([40.0, -40.0, 800.0, -800.0, np.inf, -np.inf, 40.0])
    t = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    grad = crossent.sigmoid_focal_loss_grad(x, t, gamma=gamma, reduction="none")
    assert np.all(np.isfinite(grad))
    assert np.all(grad[2:6] == 0)  # certain and right: no loss, no gradient
    assert grad[-1] > 0  # confidently wrong: pushed back
    z = np.array([[60.0, 0.0, 0.0], [800.0, -800.0, 0.0], [0.0, 50.0, 0.0]])
    grad = crossent.softmax_focal_loss_grad(z, [0, 0, 0], gamma=gamma, reduction="none")
    assert np.all(np.isfinite(grad))
    assert np.all(grad[:2] == 0) or np.all(np.abs(grad[:2]) < 1e-20)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_softmax_focal_matches_definition_and_finite_differences(gamma: float) -> None:
    p = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    p_y = p[np.arange(6), Y]
    weight = np.append(W, 1.0)  # one per class
    expected = -weight[Y] * (1 - p_y) ** gamma * np.log(p_y)
    got = crossent.softmax_focal_loss(Z, Y, gamma=gamma, weight=weight, reduction="none")
    np.testing.assert_allclose(got, expected, rtol=CLOSED_FORM.rtol)
    grad = crossent.softmax_focal_loss_grad(Z, Y, gamma=gamma, weight=weight)
    fd = finite_difference(
        lambda z: float(crossent.softmax_focal_loss(z, Y, gamma=gamma, weight=weight)), Z
    )
    np.testing.assert_allclose(grad, fd, **FINITE_DIFFERENCE.tol())


def test_softmax_focal_gamma_zero_is_cross_entropy() -> None:
    np.testing.assert_allclose(
        crossent.softmax_focal_loss(Z, Y, gamma=0.0),
        crossent.softmax_cross_entropy(Z, Y),
        rtol=ulps(5),
    )
    np.testing.assert_allclose(
        crossent.softmax_focal_loss_grad(Z, Y, gamma=0.0),
        crossent.softmax_cross_entropy_grad(Z, Y),
        rtol=ROUNDING.rtol,
    )


# ------------------------------------------------------------------------- distillation


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.5])
def test_distillation_matches_torch_kl_div_batchmean(temperature: float) -> None:
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    z, v = torch.from_numpy(Z), torch.from_numpy(V)
    expected = (
        f.kl_div(
            f.log_softmax(z / temperature, -1),
            f.log_softmax(v / temperature, -1),
            log_target=True,
            reduction="batchmean",
        )
        * temperature**2
    )
    got = crossent.distillation_loss(Z, V, temperature=temperature)
    assert got == pytest.approx(expected.item(), **CLOSED_FORM.rel_abs())
    z.requires_grad_(True)
    expected = (
        f.kl_div(
            f.log_softmax(z / temperature, -1),
            f.log_softmax(v / temperature, -1),
            log_target=True,
            reduction="batchmean",
        )
        * temperature**2
    )
    (expected_grad,) = torch.autograd.grad(expected, z)
    np.testing.assert_allclose(
        crossent.distillation_loss_grad(Z, V, temperature=temperature),
        expected_grad.numpy(),
        **CLOSED_FORM.tol(),
    )


def test_distillation_teacher_forms_agree_and_t1_is_kl() -> None:
    probs = np.exp(V) / np.exp(V).sum(axis=1, keepdims=True)
    for t in (1.0, 3.0):
        by_logits = crossent.distillation_loss(Z, V, temperature=t, reduction="none")
        by_probs = crossent.distillation_loss(
            Z, probs, temperature=t, teacher_form="probs", reduction="none"
        )
        by_log = crossent.distillation_loss(
            Z, np.log(probs), temperature=t, teacher_form="log_probs", reduction="none"
        )
        np.testing.assert_allclose(by_probs, by_logits, rtol=CLOSED_FORM.rtol)
        np.testing.assert_allclose(by_log, by_logits, rtol=CLOSED_FORM.rtol)
    np.testing.assert_allclose(
        crossent.distillation_loss(Z, V, reduction="none"),
        crossent.kl_divergence(V, Z, p_form="logits", q_form="logits"),
        rtol=ROUNDING.rtol,
    )
    np.testing.assert_allclose(
        crossent.distillation_loss(Z, V, direction="reverse", reduction="none"),
        crossent.kl_divergence(Z, V, p_form="logits", q_form="logits"),
        rtol=ROUNDING.rtol,
    )


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_distillation_gradient_matches_finite_differences(
    direction: str, temperature: float
) -> None:
    grad = crossent.distillation_loss_grad(Z, V, temperature=temperature, direction=direction)
    fd = finite_difference(
        lambda z: float(
            crossent.distillation_loss(z, V, temperature=temperature, direction=direction)
        ),
        Z,
    )
    np.testing.assert_allclose(grad, fd, **FINITE_DIFFERENCE.tol())


def test_distillation_errors() -> None:
    with pytest.raises(InputError, match="`direction` must be 'forward' or 'reverse'"):
        crossent.distillation_loss(Z, V, direction="both")
    with pytest.raises(InputError, match=r"`temperature` must be in \(0, inf\)"):
        crossent.distillation_loss(Z, V, temperature=0)
    with pytest.raises(InputError, match=r"`teacher` must be non-negative \(probabilities\)"):
        crossent.distillation_loss(Z, V, teacher_form="probs")


# -------------------------------------------------------------------------------- hinge


def _naive_hinge(z: np.ndarray, y: np.ndarray, margin: float, variant: str) -> np.ndarray:
    out = []
    for row, label in zip(z, y, strict=True):
        rivals = [margin + row[c] - row[label] for c in range(row.size) if c != label]
        hinge = [max(0.0, r) for r in rivals]
        out.append(max(hinge) if variant == "crammer_singer" else sum(hinge))
    return np.array(out)


@pytest.mark.parametrize("variant", ["crammer_singer", "weston_watkins"])
@pytest.mark.parametrize("margin", [0.0, 1.0, 2.5])
def test_hinge_matches_definition_and_finite_differences(variant: str, margin: float) -> None:
    got = crossent.multiclass_hinge_loss(Z, Y, margin=margin, variant=variant, reduction="none")
    np.testing.assert_allclose(got, _naive_hinge(Z, Y, margin, variant), rtol=ulps(5))
    grad = crossent.multiclass_hinge_loss_grad(Z, Y, margin=margin, variant=variant)
    fd = finite_difference(
        lambda z: float(crossent.multiclass_hinge_loss(z, Y, margin=margin, variant=variant)), Z
    )
    np.testing.assert_allclose(grad, fd, **FINITE_DIFFERENCE.tol())  # random logits: no kinks


def test_weston_watkins_is_torch_multi_margin_loss_times_classes() -> None:
    torch = pytest.importorskip("torch")
    expected = (
        torch.nn.functional.multi_margin_loss(
            torch.from_numpy(Z), torch.from_numpy(Y), reduction="none"
        ).numpy()
        * Z.shape[1]
    )
    got = crossent.multiclass_hinge_loss(Z, Y, variant="weston_watkins", reduction="none")
    np.testing.assert_allclose(got, expected, rtol=ROUNDING.rtol)


def test_hinge_is_satisfied_where_cross_entropy_never_is() -> None:
    z = np.array([[5.0, 1.0, 0.0]])
    assert crossent.multiclass_hinge_loss(z, [0]) == 0.0
    assert np.all(crossent.multiclass_hinge_loss_grad(z, [0]) == 0)
    assert crossent.softmax_cross_entropy(z, [0]) > 0
    assert np.all(crossent.softmax_cross_entropy_grad(z, [0]) != 0)


def test_hinge_errors() -> None:
    with pytest.raises(InputError, match="`variant` must be"):
        crossent.multiclass_hinge_loss(Z, Y, variant="svm")
    with pytest.raises(InputError, match=r"`margin` must be in \[0, inf\)"):
        crossent.multiclass_hinge_loss(Z, Y, margin=-1)


# ----------------------------------------------------------------------------- backends


def test_family_on_every_backend(backend: Backend) -> None:
    calls = [
        lambda m, a: crossent.sigmoid_cross_entropy(a(X), a(SOFT), pos_weight=a(POS)),
        lambda m, a: crossent.sigmoid_cross_entropy_grad(a(X), a(SOFT), weight=a(W)),
        lambda m, a: crossent.sigmoid_focal_loss_grad(a(X), a(SOFT), gamma=0.5, alpha=0.3),
        lambda m, a: crossent.softmax_focal_loss_grad(a(Z), a(Y), gamma=1.5),
        lambda m, a: crossent.distillation_loss_grad(
            a(Z), a(V), temperature=2.0, direction="reverse"
        ),
        lambda m, a: crossent.multiclass_hinge_loss_grad(a(Z), a(Y), variant="weston_watkins"),
    ]
    for call in calls:
        expected = np.asarray(call(None, np.asarray))
        got = call(None, backend.asarray)
        assert isinstance(got, backend.array_type)
        np.testing.assert_allclose(backend.to_numpy(got), expected, **CLOSED_FORM.tol())
