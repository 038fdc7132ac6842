"""Hostile pass (apileft3): the losses' far-row guard on every backend, not only NumPy.

Rows whose logits spread past float64's range (``[1e308, -1e308]`` under label
smoothing or a probability target, a z-loss of 1e300 logits, ``distillation_loss`` at
:math:`T = 10^{-100}` of logits 1e210 apart) have finite losses that the common path
forms as ``inf``. NumPy formed them again (``_far_gaps``); PyTorch tensors, JAX float64
arrays and array-api-strict arrays gave ``inf`` on main (4d024a0), their ``'mean'`` too.
Now their ``inf`` rows are formed again in float64 on host copies and put back by
``where``. Oracle: the definitions in mpmath at 400 digits (50 past the cancellation
of ``LSE - z_c`` at 1e330). The non-NumPy cases fail on main.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent

DPS = 400


def _lse(x):
    top = max(x)
    return top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in x))


def _softmax_row(z, v, temperature=1.0, z_loss=0.0) -> float:
    r""":math:`\sum_c v_c(\operatorname{LSE} - z_c/T) + \lambda\operatorname{LSE}^2`
    (:math:`\omega = 1`)."""
    with mpmath.workdps(DPS):
        t = mpmath.mpf(temperature)
        x = [mpmath.mpf(float(c)) / t for c in z]
        lse = _lse(x)
        loss = mpmath.fsum(mpmath.mpf(float(w)) * (lse - c) for w, c in zip(v, x, strict=True))
        return float(loss + mpmath.mpf(z_loss) * lse * lse)


def _distill_row(student, teacher, temperature, direction) -> float:
    r""":math:`T^2 D(t\,\|\,s)` (forward) or :math:`T^2 D(s\,\|\,t)` (reverse) of the
    softened distributions of two rows of logits."""
    with mpmath.workdps(DPS):
        t = mpmath.mpf(temperature)

        def log_softmax(row):
            x = [mpmath.mpf(float(c)) / t for c in row]
            lse = _lse(x)
            return [c - lse for c in x]

        log_s, log_t = log_softmax(student), log_softmax(teacher)
        log_p, log_q = (log_t, log_s) if direction == "forward" else (log_s, log_t)
        kl = mpmath.fsum(mpmath.exp(a) * (a - b) for a, b in zip(log_p, log_q, strict=True))
        return float(t * t * kl)


def _quiet(f, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the common path's overflow
        return f(*args, **kwargs)


def _close(got, expected, rtol=1e-13) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), expected, rtol=rtol, atol=0)


LOGITS = np.array([[1e308, -1e308], [1.0, 2.0]])
LABELS = np.array([0, 1])


@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "parts"])
def test_label_smoothing_far_row(backend: Any, reduction: str) -> None:
    got = _quiet(
        crossent.softmax_cross_entropy,
        backend.asarray(LOGITS),
        backend.asarray(LABELS),
        label_smoothing=0.1,
        reduction=reduction,
    )
    rows = [_softmax_row(LOGITS[0], [0.95, 0.05]), _softmax_row(LOGITS[1], [0.05, 0.95])]
    assert rows[0] == pytest.approx(1e307, rel=1e-14)
    if reduction == "parts":
        _close(backend.to_numpy(got.total), sum(rows))
        assert float(backend.to_numpy(got.normalizer)) == 2.0
        return
    expected = {"none": rows, "sum": sum(rows), "mean": sum(rows) / 2}[reduction]
    _close(backend.to_numpy(got), expected)


def test_z_loss_of_huge_logits(backend: Any) -> None:
    z = np.array([[1e300, -1e300], [1.0, 2.0]])
    got = _quiet(
        crossent.softmax_cross_entropy,
        backend.asarray(z),
        backend.asarray(LABELS),
        z_loss=1e-300,
        reduction="none",
    )
    expected = [
        _softmax_row(z[0], [1, 0], z_loss=1e-300),
        _softmax_row(z[1], [0, 1], z_loss=1e-300),
    ]
    _close(backend.to_numpy(got), expected)
    mean = _quiet(
        crossent.softmax_cross_entropy, backend.asarray(z), backend.asarray(LABELS), z_loss=1e-300
    )
    _close(backend.to_numpy(mean), sum(expected) / 2)


def test_probability_targets_far_row(backend: Any) -> None:
    targets = np.array([[0.99, 0.01], [0.5, 0.5]])
    got = _quiet(
        crossent.softmax_cross_entropy_with_targets,
        backend.asarray(LOGITS),
        backend.asarray(targets),
        weight=backend.asarray(np.array([1.0, 0.5])),
        reduction="none",
    )
    expected = [_softmax_row(LOGITS[i], targets[i] * [1.0, 0.5]) for i in range(2)]
    _close(backend.to_numpy(got), expected)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_distillation_at_a_tiny_temperature(backend: Any, direction: str) -> None:
    student = np.array([[1e210, 0.0], [0.1, 0.2]])
    teacher = np.array([[0.0, 1e210], [0.3, 0.1]])
    got = _quiet(
        crossent.distillation_loss,
        backend.asarray(student),
        backend.asarray(teacher),
        temperature=1e-100,
        direction=direction,
        reduction="none",
    )
    expected = [_distill_row(student[i], teacher[i], 1e-100, direction) for i in range(2)]
    assert expected[0] == pytest.approx(1e110, rel=1e-14)
    _close(backend.to_numpy(got), expected)


def test_float32_tensor_far_row() -> None:
    torch = pytest.importorskip("torch")
    z = torch.tensor([[3e38, -3e38], [1.0, 2.0]], dtype=torch.float32)
    got = crossent.softmax_cross_entropy(
        z, torch.tensor([0, 1]), label_smoothing=0.1, reduction="none"
    )
    assert got.dtype == torch.float32
    z64 = z.double().numpy()
    expected = [_softmax_row(z64[0], [0.95, 0.05]), _softmax_row(z64[1], [0.05, 0.95])]
    _close(got.numpy(), expected, rtol=1e-6)


def test_autograd_keeps_the_finite_rows_graph() -> None:
    """The formed rows are constants; the others keep their gradient."""
    torch = pytest.importorskip("torch")
    z = torch.tensor(LOGITS, requires_grad=True)
    loss = _quiet(
        crossent.softmax_cross_entropy,
        z,
        torch.from_numpy(LABELS),
        label_smoothing=0.1,
        reduction="none",
    )
    assert math.isfinite(float(loss[0].detach()))
    loss[1].backward()
    expected = crossent.softmax_cross_entropy_grad(
        LOGITS[1:], LABELS[1:], label_smoothing=0.1, reduction="sum"
    )
    np.testing.assert_allclose(z.grad[1].numpy(), expected[0], rtol=1e-14)


def test_jit_keeps_the_common_path(jax_x64: Any) -> None:
    """Traced arrays have no values to check: the common path's value, as before."""
    jax = jax_x64
    jnp = pytest.importorskip("jax.numpy")

    def loss(z, y):
        return crossent.softmax_cross_entropy(z, y, label_smoothing=0.1, validate=False)

    got = jax.jit(loss)(jnp.asarray(LOGITS[1:]), jnp.asarray(LABELS[1:]))
    plain = crossent.softmax_cross_entropy(LOGITS[1:], LABELS[1:], label_smoothing=0.1)
    assert float(got) == pytest.approx(float(plain), rel=1e-15)


def _reverse_gradient(student, teacher, temperature) -> list[float]:
    r""":math:`T s\odot(\log s - \log t - D(s\,\|\,t))`, the definition, at 500 digits
    (the teacher's gap of 1e310 after :math:`T` cancels 310 of them)."""
    with mpmath.workdps(500):
        t = mpmath.mpf(temperature)

        def log_softmax(row):
            x = [mpmath.mpf(float(c)) / t for c in row]
            lse = _lse(x)
            return [c - lse for c in x]

        log_s, log_t = log_softmax(student), log_softmax(teacher)
        kl = mpmath.fsum(mpmath.exp(a) * (a - b) for a, b in zip(log_s, log_t, strict=True))
        return [float(t * mpmath.exp(a) * (a - b - kl)) for a, b in zip(log_s, log_t, strict=True)]


def test_reverse_distillation_gradient_of_a_far_teacher(backend: Any) -> None:
    """A teacher gap past the range after T: NumPy formed the row again, PyTorch, JAX and
    array-api-strict gave NaN on main (an infinite D), truth +-1.97e209."""
    student = np.array([[0.0, 1e-100], [0.1, 0.2]])
    teacher = np.array([[0.0, 1e210], [0.3, 0.1]])
    got = _quiet(
        crossent.distillation_loss_grad,
        backend.asarray(student),
        backend.asarray(teacher),
        temperature=1e-100,
        direction="reverse",
        reduction="none",
    )
    expected = [_reverse_gradient(student[i], teacher[i], 1e-100) for i in range(2)]
    assert abs(expected[0][0]) == pytest.approx(1.966e209, rel=1e-3)
    _close(backend.to_numpy(got), expected)


@pytest.mark.parametrize(("temperature", "direction"), [(1e-30, "forward"), (1e-30, "reverse")])
def test_float32_distillation_whose_square_temperature_underflows(
    backend: Any, temperature: float, direction: str
) -> None:
    """Float32 arrays computed in float32: T**2 = 0 times an inf D was NaN on PyTorch and
    JAX (main), NumPy's float32 (computed in float64) 3e8 / 2e8, the truth."""
    student = np.array([[3e38, -3e38, 0.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    teacher = np.array([[0.0, 1.0, 2e38], [1.0, 0.0, 3.0]], dtype=np.float32)
    got = _quiet(
        crossent.distillation_loss,
        backend.asarray(student),
        backend.asarray(teacher),
        temperature=temperature,
        direction=direction,
        reduction="none",
    )
    expected = [_distill_row(student[i], teacher[i], temperature, direction) for i in range(2)]
    _close(backend.to_numpy(got), expected, rtol=1e-6)
