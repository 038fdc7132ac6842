"""Autograd through the far rows formed again on other libraries (farautograd).

apileft3 formed again, in float64 on host copies, the rows of a PyTorch loss that the
common path gives as ``inf`` although the truth is finite (``[1e308, -1e308]`` under
label smoothing or a probability target, a z-loss of 1e300 logits, ``distillation_loss``
at :math:`T = 10^{-100}`), and put them back by ``where`` as constants: their gradient
was 0 on main, silently. Now each formed row carries its exact gradient
(:math:`L + \\sum_c g_c (x_c - \\operatorname{detach} x_c)`, ``g`` by the loss's NumPy
``*_grad`` twin). Oracles: the NumPy ``*_grad`` functions on the same data, and central
finite differences of the definition in mpmath at 500 digits (:math:`h = 10^{-40}`,
the rows' values up to 1e307: 350 digits of headroom and 60+ past the difference).
Every gradient case fails on main (0 where the truth is not).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent

torch = pytest.importorskip("torch")

DPS = 500
H = mpmath.mpf("1e-40")


def _lse(x):
    top = max(x)
    return top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in x))


def _softmax_loss(z, v, temperature, z_loss):
    r""":math:`\sum_c v_c(\operatorname{LSE} - z_c/T) + \lambda\operatorname{LSE}^2`."""
    t = mpmath.mpf(temperature)
    x = [c / t for c in z]
    lse = _lse(x)
    return mpmath.fsum(w * (lse - c) for w, c in zip(v, x, strict=True)) + z_loss * lse * lse


def _distill_loss(student, teacher, temperature, direction):
    r""":math:`T^2 D(t\,\|\,s)` (forward) or :math:`T^2 D(s\,\|\,t)` (reverse)."""
    t = mpmath.mpf(temperature)

    def log_softmax(row):
        x = [c / t for c in row]
        lse = _lse(x)
        return [c - lse for c in x]

    log_s, log_t = log_softmax(student), log_softmax(teacher)
    log_p, log_q = (log_t, log_s) if direction == "forward" else (log_s, log_t)
    return t * t * mpmath.fsum(mpmath.exp(a) * (a - b) for a, b in zip(log_p, log_q, strict=True))


def _finite_difference(loss, row) -> list[float]:
    """Central differences of ``loss`` (a function of a list of mpf) at the float row."""
    with mpmath.workdps(DPS):
        base = [mpmath.mpf(float(c)) for c in row]
        out = []
        for j in range(len(base)):
            up = [c + (H if k == j else 0) for k, c in enumerate(base)]
            down = [c - (H if k == j else 0) for k, c in enumerate(base)]
            out.append(float((loss(up) - loss(down)) / (2 * H)))
        return out


def _quiet(f, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the common path's overflow
        return f(*args, **kwargs)


def _backward(f, x: np.ndarray, *rest: Any, reduction: str, **kwargs: Any):
    """``(loss, x.grad)`` of ``f(x, *rest)`` on float64 tensors: ``'none'`` backs the
    sum of the rows."""
    z = torch.tensor(x, requires_grad=True)
    loss = _quiet(f, z, *(torch.as_tensor(r) for r in rest), reduction=reduction, **kwargs)
    (loss.sum() if reduction == "none" else loss).backward()
    return loss.detach().numpy(), z.grad.numpy()


LOGITS = np.array([[1e308, -1e308], [1.0, 2.0]])
LABELS = np.array([0, 1])


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_label_smoothing_far_row_gradient(reduction: str) -> None:
    value, grad = _backward(
        crossent.softmax_cross_entropy, LOGITS, LABELS, reduction=reduction, label_smoothing=0.1
    )
    expected = crossent.softmax_cross_entropy_grad(
        LOGITS, LABELS, label_smoothing=0.1, reduction=reduction
    )
    np.testing.assert_allclose(grad, expected, rtol=1e-14, atol=0)
    scale = 0.5 if reduction == "mean" else 1.0
    truth = _finite_difference(
        lambda z: _softmax_loss(z, [mpmath.mpf("0.95"), mpmath.mpf("0.05")], 1.0, 0), LOGITS[0]
    )
    assert truth[0] == pytest.approx(0.05, rel=1e-12)  # (p = e_0, v = (0.95, 0.05))
    np.testing.assert_allclose(grad[0], np.array(truth) * scale, rtol=1e-13, atol=0)
    # the value keeps its bits
    plain = _quiet(
        crossent.softmax_cross_entropy,
        torch.tensor(LOGITS),
        torch.tensor(LABELS),
        label_smoothing=0.1,
        reduction=reduction,
    )
    np.testing.assert_array_equal(value, plain.numpy())


def test_z_loss_far_row_gradient() -> None:
    z = np.array([[1e300, -1e300], [1.0, 2.0]])
    _, grad = _backward(crossent.softmax_cross_entropy, z, LABELS, reduction="none", z_loss=1e-300)
    expected = crossent.softmax_cross_entropy_grad(z, LABELS, z_loss=1e-300, reduction="none")
    np.testing.assert_allclose(grad, expected, rtol=1e-14, atol=0)
    truth = _finite_difference(lambda x: _softmax_loss(x, [1, 0], 1.0, mpmath.mpf(1e-300)), z[0])
    assert truth[0] == pytest.approx(2.0, rel=1e-12)  # (p_0 - 1) + 2 lambda LSE p_0
    np.testing.assert_allclose(grad[0], truth, rtol=1e-13, atol=0)


def test_probability_targets_far_row_gradient() -> None:
    targets = np.array([[0.99, 0.01], [0.5, 0.5]])
    weight = np.array([1.0, 0.5])
    _, grad = _backward(
        crossent.softmax_cross_entropy_with_targets,
        LOGITS,
        targets,
        reduction="none",
        weight=torch.tensor(weight),
    )
    expected = crossent.softmax_cross_entropy_with_targets_grad(
        LOGITS, targets, weight=weight, reduction="none"
    )
    np.testing.assert_allclose(grad, expected, rtol=1e-14, atol=0)
    v = [mpmath.mpf(float(targets[0, c])) * mpmath.mpf(float(weight[c])) for c in range(2)]
    truth = _finite_difference(lambda x: _softmax_loss(x, v, 1.0, 0), LOGITS[0])
    np.testing.assert_allclose(grad[0], truth, rtol=1e-13, atol=0)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_distillation_far_row_gradient(direction: str) -> None:
    student = np.array([[1e210, 0.0], [0.1, 0.2]])
    teacher = np.array([[0.0, 1e210], [0.3, 0.1]])
    _, grad = _backward(
        crossent.distillation_loss,
        student,
        teacher,
        reduction="none",
        temperature=1e-100,
        direction=direction,
    )
    expected = _quiet(
        crossent.distillation_loss_grad,
        student,
        teacher,
        temperature=1e-100,
        direction=direction,
        reduction="none",
    )
    np.testing.assert_allclose(grad, expected, rtol=1e-13, atol=0)
    t_row = [mpmath.mpf(float(c)) for c in teacher[0]]
    truth = _finite_difference(
        lambda s: _distill_loss(s, t_row, mpmath.mpf("1e-100"), direction), student[0]
    )
    np.testing.assert_allclose(grad[0], truth, rtol=1e-12, atol=1e-300)
    if direction == "forward":  # T (s - t): the row main gave 0
        assert grad[0, 0] == pytest.approx(1e-100, rel=1e-13)


def test_float32_far_row_gradient() -> None:
    z32 = np.array([[3e38, -3e38], [1.0, 2.0]], dtype=np.float32)
    z = torch.tensor(z32, requires_grad=True)
    loss = _quiet(
        crossent.softmax_cross_entropy,
        z,
        torch.tensor(LABELS),
        label_smoothing=0.1,
        reduction="sum",
    )
    loss.backward()
    assert z.grad.dtype == torch.float32
    truth = _finite_difference(
        lambda x: _softmax_loss(x, [mpmath.mpf("0.95"), mpmath.mpf("0.05")], 1.0, 0), z32[0]
    )
    np.testing.assert_allclose(z.grad[0].numpy(), truth, rtol=2e-7, atol=0)


def test_targets_gradient_is_nan_not_zero_in_a_far_row() -> None:
    """The gradient in the targets is not formed: NaN in the far row (0 on main), the
    common path's in the other."""
    targets = torch.tensor([[0.99, 0.01], [0.5, 0.5]], dtype=torch.float64, requires_grad=True)
    loss = _quiet(
        crossent.softmax_cross_entropy_with_targets,
        torch.tensor(LOGITS),
        targets,
        reduction="none",
    )
    loss.sum().backward()
    assert torch.isnan(targets.grad[0]).all()
    expected = _lse_minus(np.array([1.0, 2.0]))
    np.testing.assert_allclose(targets.grad[1].numpy(), expected, rtol=1e-14)


def _lse_minus(z: np.ndarray) -> np.ndarray:
    top = z.max()
    return top + math.log(np.exp(z - top).sum()) - z


def test_no_gradient_asked_no_extra_work() -> None:
    """Without requires_grad (or under no_grad) the formed rows are plain constants."""
    z = torch.tensor(LOGITS, requires_grad=True)
    with torch.no_grad():
        loss = _quiet(crossent.softmax_cross_entropy, z, torch.tensor(LABELS), label_smoothing=0.1)
    assert loss.grad_fn is None
    assert loss.item() == pytest.approx((1e307 + 0.3632616875182228) / 2, rel=1e-14)


def test_torch_func_transforms_keep_the_common_path() -> None:
    """Tensors of torch.func.vmap / grad have no host copy: the far-row pass leaves them
    to the common path, as JAX's tracers (main: '`loss` (Tensor) could not be read as a
    host array' from the host copy)."""
    func = pytest.importorskip("torch.func")
    z = torch.tensor(np.stack([LOGITS, LOGITS[::-1].copy()]))
    y = torch.tensor(LABELS)

    def rows(x: Any) -> Any:
        return crossent.softmax_cross_entropy(
            x, y, label_smoothing=0.1, reduction="none", validate=False
        )

    got = _quiet(func.vmap(rows), z)
    assert got.shape == (2, 2)
    assert math.isinf(float(got[0, 0]))  # the common path's value, unread
    one = _quiet(func.grad(lambda x: rows(x)[1]), z[0])
    expected = crossent.softmax_cross_entropy_grad(
        LOGITS[1:], LABELS[1:], label_smoothing=0.1, reduction="sum"
    )
    np.testing.assert_allclose(one[1].numpy(), expected[0], rtol=1e-14)
