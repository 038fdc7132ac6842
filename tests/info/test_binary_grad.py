"""binary_cross_entropy_grad: finite differences, torch, the limits, every backend."""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent

from conftest import Backend
from tolerances import CLOSED_FORM, FINITE_DIFFERENCE, ROUNDING, SUM, ulps

RNG = np.random.default_rng(41)
P = RNG.uniform(size=50)
Q = RNG.uniform(0.01, 0.99, size=50)


def test_matches_finite_differences_and_the_closed_form() -> None:
    h = 1e-7
    fd = (crossent.binary_cross_entropy(P, Q + h) - crossent.binary_cross_entropy(P, Q - h)) / (
        2 * h
    )
    grad = crossent.binary_cross_entropy_grad(P, Q)
    np.testing.assert_allclose(grad, fd, **FINITE_DIFFERENCE.tol())
    np.testing.assert_allclose(grad, (Q - P) / (Q * (1 - Q)), rtol=CLOSED_FORM.rtol)
    np.testing.assert_allclose(
        crossent.binary_cross_entropy_grad(P, Q, base=2), grad / math.log(2), rtol=ulps(5)
    )


def test_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    q = torch.from_numpy(Q).requires_grad_(True)
    loss = torch.nn.functional.binary_cross_entropy(q, torch.from_numpy(P), reduction="sum")
    (expected,) = torch.autograd.grad(loss, q)
    np.testing.assert_allclose(
        crossent.binary_cross_entropy_grad(P, Q), expected.numpy(), rtol=CLOSED_FORM.rtol
    )


def test_limits_are_finite_where_the_loss_is() -> None:
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.5, 0.5])
    q = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    loss = crossent.binary_cross_entropy(p, q)
    grad = crossent.binary_cross_entropy_grad(p, q)
    np.testing.assert_array_equal(loss, [0.0, 0.0, np.inf, np.inf, np.inf, np.inf])
    np.testing.assert_array_equal(grad, [1.0, -1.0, np.inf, -np.inf, -np.inf, np.inf])


def test_every_backend_and_autograd(backend: Backend) -> None:
    got = crossent.binary_cross_entropy_grad(backend.asarray(P), backend.asarray(Q))
    assert isinstance(got, backend.array_type)
    np.testing.assert_allclose(
        backend.to_numpy(got), crossent.binary_cross_entropy_grad(P, Q), rtol=ROUNDING.rtol
    )
    if backend.name == "torch":
        import torch

        q = torch.from_numpy(Q).requires_grad_(True)
        (autograd,) = torch.autograd.grad(
            crossent.binary_cross_entropy(torch.from_numpy(P), q).sum(), q
        )
        np.testing.assert_allclose(autograd.numpy(), backend.to_numpy(got), rtol=SUM.rtol)
