"""Autograd through every loss equals its gradient twin, finite at the limits."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import crossent

from tolerances import CLOSED_FORM

torch = pytest.importorskip("torch")

Z = torch.tensor(
    [[60.0, 0.0, -math.inf, 1.0], [800.0, -800.0, 0.0, 2.0], [0.1, 0.2, 0.3, -0.4]],
    dtype=torch.float64,
)
Y = torch.tensor([0, 0, 2])
TEACHER = torch.tensor(
    [[1.0, 0.5, -2.0, 0.0], [0.0, 3.0, 0.5, 1.0], [2.0, 0.2, 0.3, 0.1]], dtype=torch.float64
)
X = torch.tensor([40.0, -40.0, 800.0, -800.0, math.inf, -math.inf, 40.0, 0.3], dtype=torch.float64)
T = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.7], dtype=torch.float64)

CASES = {
    "softmax_ce": (
        crossent.softmax_cross_entropy,
        crossent.softmax_cross_entropy_grad,
        Z,
        Y,
        {"z_loss": 1e-3},
    ),
    "softmax_ce_smoothing": (
        crossent.softmax_cross_entropy,
        crossent.softmax_cross_entropy_grad,
        Z[2:],
        Y[2:],
        {"label_smoothing": 0.1, "soft_cap": 5.0},
    ),
    "softmax_focal": (
        crossent.softmax_focal_loss,
        crossent.softmax_focal_loss_grad,
        Z,
        Y,
        {"gamma": 0.5},
    ),
    "sigmoid_ce": (
        crossent.sigmoid_cross_entropy,
        crossent.sigmoid_cross_entropy_grad,
        X,
        T,
        {"pos_weight": torch.tensor(2.0, dtype=torch.float64)},
    ),
    "sigmoid_focal": (
        crossent.sigmoid_focal_loss,
        crossent.sigmoid_focal_loss_grad,
        X,
        T,
        {"gamma": 0.5, "alpha": 0.25},
    ),
    "distill_forward": (
        crossent.distillation_loss,
        crossent.distillation_loss_grad,
        Z[1:, :],
        TEACHER[1:],
        {"temperature": 2.0},
    ),
    "distill_reverse": (
        crossent.distillation_loss,
        crossent.distillation_loss_grad,
        Z[1:, :],
        TEACHER[1:],
        {"temperature": 2.0, "direction": "reverse"},
    ),
    "hinge": (
        crossent.multiclass_hinge_loss,
        crossent.multiclass_hinge_loss_grad,
        Z[2:],
        Y[2:],
        {"variant": "weston_watkins"},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_torch_autograd_equals_the_gradient_twin(name: str) -> None:
    forward, twin, logits, target, options = CASES[name]
    z = logits.clone().requires_grad_(True)
    (autograd,) = torch.autograd.grad(forward(z, target, **options), z)
    assert torch.isfinite(autograd).all()
    torch.testing.assert_close(twin(logits, target, **options), autograd, **CLOSED_FORM.tol())


@pytest.mark.parametrize("name", ["softmax_ce", "sigmoid_focal", "distill_reverse"])
def test_jax_grad_equals_the_gradient_twin(name: str, jax_x64: Any) -> None:
    jax = jax_x64
    import jax.numpy as jnp

    forward, twin, logits, target, options = CASES[name]
    options = {
        k: (jnp.asarray(v.numpy()) if isinstance(v, torch.Tensor) else v)
        for k, v in options.items()
    }
    z, t = jnp.asarray(logits.numpy()), jnp.asarray(target.numpy())
    grad = jax.grad(lambda a: forward(a, t, **options))(z)
    assert np.all(np.isfinite(np.asarray(grad)))
    np.testing.assert_allclose(
        np.asarray(grad), np.asarray(twin(z, t, **options)), **CLOSED_FORM.tol()
    )
