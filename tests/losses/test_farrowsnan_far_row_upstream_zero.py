"""A far row whose upstream gradient is 0 has gradient 0, not NaN (farrowsnan).

The far rows of a PyTorch loss (``inf``/NaN on the common path where the truth is
finite) are formed again on float64 host copies and put back by ``where``, with their
gradient attached (apileft3, farautograd). ``where``'s backward gives the common path an
upstream of 0 in those rows, but the common path's own backward multiplied that 0 by an
``inf`` partial: with ``loss = f(..., reduction='none')`` and only an ordinary row backed
(``loss[1].backward()``), the targets', teacher's and class weights' gradients were NaN
in the far row (and the class weight of the ordinary row's label) on main, where 0 is
right. Now the common path runs once more with the far rows' inputs harmless (the
"double where"). Oracles: float64 torch formulas (``torch.nn.functional``), mpmath
central differences at 500 digits, and the same call with the far row replaced by an
ordinary one (the common path is row-wise: bit for bit). The ``loss.sum()`` behaviour of
farautograd (exact logits gradient, NaN where a gradient is not formed) is kept.
Every test but the last fails on main (NaN).
"""

from __future__ import annotations

import warnings
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent

torch = pytest.importorskip("torch")
F = torch.nn.functional

FAR = [1e308, -1e308]
ORDINARY = [1.0, 2.0]


def _quiet(f: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the common path's overflow
        return f(*args, **kwargs)


def _leaf(values: Any) -> Any:
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


def _second_row_gradients(f: Any, first: list[float], *tensors: Any, **kwargs: Any) -> Any:
    """``loss[1].backward()`` of ``f(logits, *tensors)`` whose row 0 is ``first``; the
    gradients of the tensors (the logits first), and the loss."""
    logits = _leaf([first, ORDINARY])
    leaves = [logits, *(_leaf(t) if isinstance(t, list) else t for t in tensors)]
    loss = _quiet(f, *leaves, reduction="none", **kwargs)
    loss[1].backward()
    return loss.detach(), [x.grad for x in leaves if x.requires_grad]


def test_targets_far_row_gradient_is_zero_when_not_backed() -> None:
    targets = [[0.99, 0.01], [0.5, 0.5]]
    loss, (g_logits, g_targets) = _second_row_gradients(
        crossent.softmax_cross_entropy_with_targets, FAR, targets
    )
    assert np.isfinite(loss.numpy()).all()  # (row 0 formed again)
    assert torch.equal(g_targets[0], torch.zeros(2, dtype=torch.float64))  # main: NaN
    assert torch.equal(g_logits[0], torch.zeros(2, dtype=torch.float64))
    # the ordinary row: bit for bit the common path's, and the float64 torch formula
    _, (plain_logits, plain_targets) = _second_row_gradients(
        crossent.softmax_cross_entropy_with_targets, [0.0, 0.0], targets
    )
    assert torch.equal(g_targets[1], plain_targets[1])
    assert torch.equal(g_logits[1], plain_logits[1])
    z = torch.tensor(ORDINARY, dtype=torch.float64)
    np.testing.assert_allclose(g_targets[1].numpy(), -F.log_softmax(z, 0).numpy(), rtol=1e-15)


def test_label_smoothing_class_weight_gradient_is_finite_when_far_row_not_backed() -> None:
    labels = torch.tensor([0, 1])
    weight = _leaf([1.0, 0.5])
    loss, (g_logits,) = _second_row_gradients(
        crossent.softmax_cross_entropy, FAR, labels, weight=weight, label_smoothing=0.1
    )
    g_weight = weight.grad
    assert np.isfinite(loss.numpy()).all()
    assert torch.isfinite(g_weight).all()  # main: NaN at class 1
    assert torch.equal(g_logits[0], torch.zeros(2, dtype=torch.float64))
    # float64 torch: sum_c v_c (-log softmax(z)_c), v = 0.9 w_y e_y + (0.1 / C) w
    # (F.cross_entropy has no gradient in its weight)
    reference_weight = _leaf([1.0, 0.5])
    nll = -F.log_softmax(torch.tensor(ORDINARY, dtype=torch.float64), 0)
    v = 0.05 * reference_weight + 0.9 * reference_weight * torch.tensor([0.0, 1.0])
    (v * nll).sum().backward()
    np.testing.assert_allclose(g_weight.numpy(), reference_weight.grad.numpy(), rtol=1e-15)
    plain_weight = _leaf([1.0, 0.5])
    _, (plain_logits,) = _second_row_gradients(
        crossent.softmax_cross_entropy, [0.0, 0.0], labels, weight=plain_weight, label_smoothing=0.1
    )
    assert torch.equal(g_weight, plain_weight.grad)
    assert torch.equal(g_logits[1], plain_logits[1])


def _distill(student: list, teacher: list, temperature: Any) -> Any:
    r""":math:`T^2 D(t\\,\\|\\,s)` of one row in mpmath (teacher log-probabilities read as
    logits: softmax is invariant to their shift)."""
    t = mpmath.mpf(temperature)

    def log_softmax(row: list) -> list:
        x = [c / t for c in row]
        top = max(x)
        lse = top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in x))
        return [c - lse for c in x]

    log_p, log_q = log_softmax(teacher), log_softmax(student)
    return t * t * mpmath.fsum(mpmath.exp(a) * (a - b) for a, b in zip(log_p, log_q, strict=True))


def _central(loss: Any, row: list[float]) -> list[float]:
    h = mpmath.mpf("1e-40")
    with mpmath.workdps(500):
        base = [mpmath.mpf(c) for c in row]
        out = []
        for j in range(len(base)):
            up = [c + (h if k == j else 0) for k, c in enumerate(base)]
            down = [c - (h if k == j else 0) for k, c in enumerate(base)]
            out.append(float((loss(up) - loss(down)) / (2 * h)))
        return out


def test_distillation_teacher_and_student_gradient_zero_in_far_row() -> None:
    """Forward KL of log-probability teachers at T = 1e200: row 0's gaps pass the range
    (main: NaN in both the teacher's and the student's far row)."""
    temperature = 1e200
    second_teacher = [float(np.log(0.3)), float(np.log(0.7))]
    teacher = _leaf([[-1e300, 0.0], second_teacher])
    loss, (g_student, g_teacher) = _second_row_gradients(
        crossent.distillation_loss,
        [0.0, 1e210],
        teacher,
        temperature=temperature,
        teacher_form="log_probs",
    )
    assert np.isfinite(loss.numpy()).all()
    assert torch.equal(g_teacher[0], torch.zeros(2, dtype=torch.float64))
    assert torch.equal(g_student[0], torch.zeros(2, dtype=torch.float64))
    with mpmath.workdps(500):
        student_row = [mpmath.mpf(c) for c in ORDINARY]
        teacher_row = [mpmath.mpf(c) for c in second_teacher]
    truth_teacher = _central(lambda t: _distill(student_row, t, temperature), second_teacher)
    truth_student = _central(lambda s: _distill(s, teacher_row, temperature), ORDINARY)
    np.testing.assert_allclose(g_teacher[1].numpy(), truth_teacher, rtol=1e-12)
    np.testing.assert_allclose(g_student[1].numpy(), truth_student, rtol=1e-12)
    plain_teacher = _leaf([second_teacher, second_teacher])
    _, (plain_student, plain) = _second_row_gradients(
        crossent.distillation_loss,
        ORDINARY,
        plain_teacher,
        temperature=temperature,
        teacher_form="log_probs",
    )
    assert torch.equal(g_teacher[1], plain[1])
    assert torch.equal(g_student[1], plain_student[1])


def test_sum_keeps_exact_logits_gradient_and_nan_targets() -> None:
    """``loss.sum()`` backs the far row: the logits' gradient there is the NumPy twin's
    (exact), the targets' NaN (not formed), as farautograd documents; the ordinary row
    as the common path. (Passes on main too: a guard of the kept behaviour.)"""
    logits = _leaf([FAR, ORDINARY])
    targets = _leaf([[0.99, 0.01], [0.5, 0.5]])
    _quiet(
        crossent.softmax_cross_entropy_with_targets, logits, targets, reduction="none"
    ).sum().backward()
    expected = crossent.softmax_cross_entropy_with_targets_grad(
        np.array([FAR, ORDINARY]), np.array([[0.99, 0.01], [0.5, 0.5]]), reduction="none"
    )
    np.testing.assert_allclose(logits.grad.numpy(), expected, rtol=1e-14, atol=0)
    assert torch.isnan(targets.grad[0]).all()
    z = torch.tensor(ORDINARY, dtype=torch.float64)
    np.testing.assert_allclose(targets.grad[1].numpy(), -F.log_softmax(z, 0).numpy(), rtol=1e-15)
