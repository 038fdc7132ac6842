"""Gradients under torch autograd and jax.grad: finite wherever the value is, and correct."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import crossent

from tolerances import FINITE_DIFFERENCE, ROUNDING, SUM

P = np.array([0.5, 0.3, 0.2, 0.0, 0.0])
Q = np.array([0.1, 0.6, 0.3, 0.0, 0.0])  # p = q = 0 on the last two classes
Q_POSITIVE = np.array([0.1, 0.5, 0.2, 0.15, 0.05])

FINITE_AT_ZERO = [
    crossent.cross_entropy,
    crossent.kl_divergence,
    crossent.js_divergence,
    lambda p, q: crossent.entropy(p),
    lambda p, q: crossent.cross_entropy_decomposition(p, q).kl_divergence,
]


@pytest.mark.parametrize("measure", FINITE_AT_ZERO)
def test_torch_gradients_are_finite_where_p_and_q_are_zero(measure: object) -> None:
    torch = pytest.importorskip("torch")
    p = torch.tensor(P, requires_grad=True)
    q = torch.tensor(Q, requires_grad=True)
    value = measure(p, q)  # type: ignore[operator]
    grad_p, grad_q = torch.autograd.grad(value, (p, q), allow_unused=True)
    for grad in (grad_p, grad_q):
        if grad is not None:
            assert torch.isfinite(grad).all(), grad
    if grad_q is not None:
        # Classes with p = 0 cannot move any of these measures: their q-gradient is 0.
        assert (grad_q[3:] == 0).all()


@pytest.mark.parametrize("measure", FINITE_AT_ZERO)
def test_jax_gradients_are_finite_where_p_and_q_are_zero(measure: object, jax_x64: Any) -> None:
    jax = jax_x64
    import jax.numpy as jnp

    grads = jax.grad(lambda p, q: measure(p, q), argnums=(0, 1))(  # type: ignore[operator]
        jnp.asarray(P), jnp.asarray(Q)
    )
    for grad in grads:
        assert np.all(np.isfinite(np.asarray(grad)))
    assert np.all(np.asarray(grads[1])[3:] == 0)


def test_analytic_gradients_of_cross_entropy_and_kl() -> None:
    torch = pytest.importorskip("torch")
    p = torch.tensor(P, requires_grad=True)
    q = torch.tensor(Q_POSITIVE, requires_grad=True)
    grad_p, grad_q = torch.autograd.grad(crossent.cross_entropy(p, q), (p, q))
    torch.testing.assert_close(grad_q, -p.detach() / q.detach(), **ROUNDING.tol())
    torch.testing.assert_close(grad_p, -torch.log(q.detach()), **ROUNDING.tol())
    grad_p, grad_q = torch.autograd.grad(crossent.kl_divergence(p, q), (p, q))
    torch.testing.assert_close(grad_q, -p.detach() / q.detach(), **ROUNDING.tol())
    expected_p = torch.log(p.detach() / q.detach()) + 1
    torch.testing.assert_close(grad_p[:3], expected_p[:3], **SUM.tol())


def test_softmax_cross_entropy_gradient_is_p_minus_y() -> None:
    # The seeds' feedback signal: d/dz H(y, softmax(z)) = softmax(z) - y.
    torch = pytest.importorskip("torch")
    z = torch.tensor([[0.5, 2.0, 0.5], [3.0, -1.0, 0.2]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[0.0, 1.0, 0.0], [0.2, 0.3, 0.5]], dtype=torch.float64)
    (grad,) = torch.autograd.grad(crossent.cross_entropy(y, z, q_form="logits").sum(), z)
    torch.testing.assert_close(grad, torch.softmax(z.detach(), -1) - y, **SUM.tol())
    assert abs(float(grad.sum(-1).abs().max())) < 1e-15  # sums to zero over classes


# Finite differences step off the simplex, so validation is off; the formulas are smooth
# extensions there.
@pytest.mark.parametrize(
    "measure",
    [
        lambda p, q: crossent.cross_entropy(p, q, validate=False),
        lambda p, q: crossent.kl_divergence(p, q, validate=False),
        lambda p, q: crossent.js_divergence(p, q, validate=False),
        lambda p, q: crossent.entropy(p, validate=False),
        lambda p, q: crossent.kl_divergence(p, q, p_form="logits", q_form="logits"),
        lambda p, q: crossent.cross_entropy(p, q, q_form="log_probs", validate=False),
        lambda p, q: crossent.entropy(q, p_form="logits"),
        lambda p, q: crossent.binary_cross_entropy(p, q, validate=False).sum(),
        lambda p, q: crossent.binary_entropy(q, validate=False).sum(),
    ],
)
def test_gradients_match_finite_differences(measure: object) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    p = torch.tensor(rng.dirichlet(np.ones(6), size=3), requires_grad=True)
    q = torch.tensor(rng.dirichlet(np.ones(6), size=3), requires_grad=True)
    assert torch.autograd.gradcheck(measure, (p, q), eps=1e-7, **FINITE_DIFFERENCE.tol())


@pytest.mark.parametrize(
    "measure",
    [
        lambda y, z: crossent.cross_entropy(y, z, q_form="logits"),
        lambda y, z: crossent.kl_divergence(y, z, q_form="logits"),
        lambda y, z: crossent.js_divergence(y, z, q_form="logits"),
        lambda y, z: crossent.entropy(z, p_form="logits"),
    ],
)
def test_gradients_through_minus_inf_logits_are_finite(measure: object) -> None:
    # A masked-out class (logit -inf) with no target mass: finite value, finite gradient,
    # and no gradient into the masked logit.
    torch = pytest.importorskip("torch")
    z = torch.tensor([1.0, -float("inf"), 0.5], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    value = measure(y, z)  # type: ignore[operator]
    assert torch.isfinite(value)
    (grad,) = torch.autograd.grad(value, z)
    assert torch.isfinite(grad).all()
    assert grad[1] == 0
