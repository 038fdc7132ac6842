"""Issue 10, "Tests that let bugs through": tests that kill mutants of ``losses/_terms.py``.

The mutation run of ``_terms.py`` (``tests/MUTATION.md``) left mutants that only the
existing tests' choice of inputs hid: a temperature of exactly 2, a batch of more than
one axis (the class axis is the last one, not axis 1), label smoothing only checked
against the same code's other paths, and the argument names of the focal and poly-1
losses' errors.  Each test here was seen failing on the mutant it names.

The oracles are float64 formulas written here with SciPy (``log_softmax``,
``logsumexp``) and central finite differences of those formulas, independent of
``crossent``.  Only the public API is called.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax, logsumexp

import crossent
from crossent import InputTypeError

from finite_differences import finite_difference
from tolerances import CLOSED_FORM, FINITE_DIFFERENCE, SUM

RNG = np.random.default_rng(20260530)
CLASSES = 5
WEIGHT = np.array([0.5, 1.0, 2.0, 0.1, 1.5])


def _transformed(z: np.ndarray, temperature: float, soft_cap: float | None) -> np.ndarray:
    capped = z if soft_cap is None else soft_cap * np.tanh(z / soft_cap)
    return capped / temperature


def _softmax_ce(
    z: np.ndarray,
    target: np.ndarray,
    *,
    weight: np.ndarray | None = None,
    label_smoothing: float = 0.0,
    temperature: float = 1.0,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
) -> np.ndarray:
    r"""Per-row :math:`-\sum_c w_c\tilde t_c\log p_c + \lambda\,\omega\,\mathrm{LSE}^2` (float64).

    ``target`` is a distribution over the last axis (one-hot for a label);
    :math:`\tilde t = (1-\varepsilon)t + \varepsilon/C`, :math:`\omega = \sum_c w_c t_c`,
    :math:`p = \operatorname{softmax}(z')` and :math:`\mathrm{LSE} = \log\sum_c e^{z'_c}`
    with :math:`z' = s\tanh(z/s)/T`.
    """
    zt = _transformed(z, temperature, soft_cap)
    w = np.ones(z.shape[-1]) if weight is None else weight
    smoothed = (1.0 - label_smoothing) * target + label_smoothing / z.shape[-1]
    omega = np.sum(w * target, axis=-1)
    lse = logsumexp(zt, axis=-1)
    return -np.sum(w * smoothed * log_softmax(zt, axis=-1), axis=-1) + z_loss * omega * lse**2


OPTIONS = [
    {"temperature": 2.0},
    {"temperature": 2.0, "soft_cap": 3.0},
    {"temperature": 2.0, "z_loss": 0.05, "label_smoothing": 0.2, "weight": WEIGHT},
    {"label_smoothing": 0.3},
    {"label_smoothing": 0.2, "weight": WEIGHT, "z_loss": 0.01},
    {"temperature": 0.7, "soft_cap": 2.0, "label_smoothing": 0.1, "weight": WEIGHT},
]


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("shape", [(6,), (2, 3)], ids=["2d", "3d"])
def test_issue10_kills_label_loss_and_gradient_options_against_float64_formula(
    options: dict, shape: tuple[int, ...]
) -> None:
    # Mutants: ``temperature != 2.0`` (T = 2 skipped) in the shift and the chain rule;
    # ``axis=+1`` for the class axis (the same as -1 on 2-D inputs only); the smoothing
    # coefficients ``2 - eps`` / ``1 + eps`` / ``eps * C``.
    z = RNG.normal(size=(*shape, CLASSES)) * 2.0
    y = RNG.integers(0, CLASSES, size=shape)
    one_hot = np.eye(CLASSES)[y]
    expected = _softmax_ce(z, one_hot, **options)
    got = crossent.softmax_cross_entropy(z, y, reduction="none", **options)
    np.testing.assert_allclose(got, expected, **SUM.tol())

    def total(x: np.ndarray) -> float:
        return float(np.sum(_softmax_ce(x, one_hot, **options)))

    grad = crossent.softmax_cross_entropy_grad(z, y, reduction="sum", **options)
    np.testing.assert_allclose(grad, finite_difference(total, z), **FINITE_DIFFERENCE.tol())


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("shape", [(6,), (2, 3)], ids=["2d", "3d"])
def test_issue10_kills_target_loss_and_gradient_options_against_float64_formula(
    options: dict, shape: tuple[int, ...]
) -> None:
    # Mutants of ``target_terms``: the class axis (``+1``), the smoothing of the targets,
    # the example weight omega = sum_c w_c t_c of the z-loss.
    z = RNG.normal(size=(*shape, CLASSES)) * 2.0
    targets = RNG.dirichlet(np.ones(CLASSES), size=shape)
    expected = _softmax_ce(z, targets, **options)
    got = crossent.softmax_cross_entropy_with_targets(z, targets, reduction="none", **options)
    np.testing.assert_allclose(got, expected, **SUM.tol())

    def total(x: np.ndarray) -> float:
        return float(np.sum(_softmax_ce(x, targets, **options)))

    grad = crossent.softmax_cross_entropy_with_targets_grad(z, targets, reduction="sum", **options)
    np.testing.assert_allclose(grad, finite_difference(total, z), **FINITE_DIFFERENCE.tol())


@pytest.mark.parametrize("temperature", [2.0, 0.5])
@pytest.mark.parametrize("shape", [(4,), (2, 3)], ids=["2d", "3d"])
def test_issue10_kills_distillation_temperature_and_class_axis(
    temperature: float, shape: tuple[int, ...]
) -> None:
    # Mutants of ``tempered_log_softmax``: ``temperature != 2.0`` and ``axis=+1``.
    # Forward distillation: T^2 KL(softmax(v/T) || softmax(z/T)) per row.
    z = RNG.normal(size=(*shape, CLASSES)) * 2.0
    v = RNG.normal(size=(*shape, CLASSES)) * 2.0
    log_t = log_softmax(v / temperature, axis=-1)
    log_s = log_softmax(z / temperature, axis=-1)
    expected = temperature**2 * np.sum(np.exp(log_t) * (log_t - log_s), axis=-1)
    got = crossent.distillation_loss(z, v, temperature=temperature, reduction="none")
    np.testing.assert_allclose(got, expected, **SUM.tol())


def _log_p_y(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.take_along_axis(log_softmax(z, axis=-1), y[..., None], axis=-1)[..., 0]


def test_issue10_kills_focal_and_poly_class_axis_on_3d_batches() -> None:
    # Mutants of ``log_prob_of_labels`` and ``probs_minus_onehot`` (``axis=+1``,
    # ``p.shape[+1]``), which only a batch of more than one axis tells from ``-1``.
    z = RNG.normal(size=(2, 3, CLASSES)) * 2.0
    y = RNG.integers(0, CLASSES, size=(2, 3))
    gamma, epsilon = 2.0, 1.5

    def focal(x: np.ndarray) -> np.ndarray:
        log_p = _log_p_y(x, y)
        return -WEIGHT[y] * (1.0 - np.exp(log_p)) ** gamma * log_p

    def poly(x: np.ndarray) -> np.ndarray:
        log_p = _log_p_y(x, y)
        return WEIGHT[y] * (-log_p + epsilon * (1.0 - np.exp(log_p)))

    options = {"weight": WEIGHT}
    got = crossent.softmax_focal_loss(z, y, gamma=gamma, reduction="none", **options)
    np.testing.assert_allclose(got, focal(z), **SUM.tol())
    grad = crossent.softmax_focal_loss_grad(z, y, gamma=gamma, reduction="sum", **options)
    expected = finite_difference(lambda x: float(np.sum(focal(x))), z)
    np.testing.assert_allclose(grad, expected, **FINITE_DIFFERENCE.tol())

    got = crossent.poly1_cross_entropy(z, y, epsilon=epsilon, reduction="none", **options)
    np.testing.assert_allclose(got, poly(z), **SUM.tol())
    grad = crossent.poly1_cross_entropy_grad(z, y, epsilon=epsilon, reduction="sum", **options)
    expected = finite_difference(lambda x: float(np.sum(poly(x))), z)
    np.testing.assert_allclose(grad, expected, **FINITE_DIFFERENCE.tol())


def test_issue10_kills_label_smoothing_value_of_one_row() -> None:
    # A closed form: logits 0 everywhere, so p = 1/C and every -log p_c = log C; with
    # weights the smoothed loss is ((1 - eps) w_y + eps/C sum_c w_c) log C.
    eps, label = 0.2, 2
    got = crossent.softmax_cross_entropy(
        np.zeros((1, CLASSES)), [label], weight=WEIGHT, label_smoothing=eps, reduction="none"
    )
    expected = ((1 - eps) * WEIGHT[label] + eps / CLASSES * WEIGHT.sum()) * np.log(CLASSES)
    assert float(got[0]) == pytest.approx(expected, **CLOSED_FORM.rel_abs())


@pytest.mark.parametrize(
    "loss", [crossent.softmax_focal_loss, crossent.poly1_cross_entropy], ids=["focal", "poly1"]
)
def test_issue10_kills_focal_and_poly_error_names(loss: object) -> None:
    # Mutants: ``names=("XXlogitsXX", ...)`` / ``("logits", "XXlabelsXX")`` in
    # ``labelled_softmax``: an error must name the caller's argument.
    assert callable(loss)
    with pytest.raises(InputTypeError, match=r"^`logits` must be real numbers"):
        loss([["a", "b"]], [0])
    with pytest.raises(InputTypeError, match=r"^`labels` must be integer class ids"):
        loss([[0.0, 1.0]], ["a"])
