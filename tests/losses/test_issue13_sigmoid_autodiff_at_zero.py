r"""Hostile pass: ``jax.grad`` of the sigmoid losses at a logit of exactly 0.

A zero-initialised output layer gives logits of exactly 0. There ``jax.grad`` of
``sigmoid_cross_entropy`` was 0 on main (c7e5b3b6) for every target, where the truth is
:math:`\sigma(0) - t = 0.5 - t` (``sigmoid_cross_entropy_grad``, PyTorch's autograd of
the same call, and ``jax.grad`` at a logit of ``1e-300`` all say so): softplus was
:math:`\max(x, 0) + \operatorname{log1p}(e^{-|x|})`, and JAX differentiates
:math:`|x|` at 0 as 1, so the two halves' derivatives (:math:`1/2` and :math:`-1/2`)
cancelled. The same for ``sigmoid_focal_loss`` (with and without ``alpha``) and with
``pos_weight``. Oracle: the closed-form gradient (``*_grad`` on NumPy, float64) and
finite differences at 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import crossent

jax = pytest.importorskip("jax")
jnp = jax.numpy


pytestmark = pytest.mark.usefixtures("jax_x64")


TARGETS = np.array([[0.3, 1.0, 0.0], [0.5, 0.9, 0.2]])
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("sigmoid_cross_entropy", {}),
    ("sigmoid_cross_entropy", {"pos_weight": [2.0, 0.5, 1.0]}),
    ("sigmoid_cross_entropy", {"label_smoothing": 0.1, "weight": [1.0, 2.0, 0.5]}),
    ("sigmoid_focal_loss", {"gamma": 2.0}),
    ("sigmoid_focal_loss", {"gamma": 0.5, "alpha": 0.25}),
]


@pytest.mark.parametrize("call", CALLS, ids=lambda c: c[0] + "-" + "-".join(c[1]))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_jax_grad_at_zero_logits(call: tuple[str, dict[str, Any]], dtype: str) -> None:
    name, options = call
    jdt, ndt = getattr(jnp, dtype), np.dtype(dtype)
    loss = getattr(crossent, name)
    given = {k: jnp.asarray(v, dtype=jdt) if isinstance(v, list) else v for k, v in options.items()}
    t = jnp.asarray(TARGETS, dtype=jdt)
    got = jax.grad(lambda z: loss(z, t, reduction="sum", **given))(jnp.zeros((2, 3), dtype=jdt))
    got = np.asarray(got, dtype=np.float64)
    host = {k: np.asarray(v) if isinstance(v, list) else v for k, v in options.items()}
    zeros = np.zeros((2, 3))
    want = getattr(crossent, name + "_grad")(zeros, TARGETS, reduction="sum", **host)
    h = 1e-6  # central differences at 0, float64 NumPy
    for i in np.ndindex(zeros.shape):
        up, down = zeros.copy(), zeros.copy()
        up[i], down[i] = h, -h
        diff = (
            loss(up, TARGETS, reduction="sum", **host)
            - loss(down, TARGETS, reduction="sum", **host)
        ) / (2 * h)
        assert abs(diff - want[i]) < 1e-8, (i, diff, want[i])
    tol = 1e-6 if ndt == np.float32 else 1e-15
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    assert np.abs(got).max() > 0.1  # (main: all 0)
