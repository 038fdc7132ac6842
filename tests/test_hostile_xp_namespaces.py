"""A hostile pass over the NumPy-style public functions called with arrays of other
libraries (JAX, PyTorch, array-api-strict): each test is named after the bug it pins and
fails on the code before its fix."""

from __future__ import annotations

import numpy as np
import pytest
from tests.tolerances import CLOSED_FORM, assert_close

import crossent

_P = [0.25, 0.75]
_Q = [0.75, 0.25]


@pytest.mark.parametrize(
    "measure",
    [
        crossent.kl_divergence,
        lambda p, q, **kw: crossent.cross_entropy_decomposition(p, q, **kw).kl_divergence,
    ],
    ids=["kl_divergence", "cross_entropy_decomposition"],
)
@pytest.mark.parametrize("validate", [True, False])
def test_kl_under_jax_grad_is_the_plain_sum_not_a_host_copy_error(
    measure: object, validate: bool
) -> None:
    """``jax.grad`` of a KL (float32, JAX's default: no float64 to correct the nearly
    equal rows in) raised "InputError: `mass` (LinearizeTracer) could not be read as a
    host array; move it to the CPU first", naming an internal array: its tracers answer
    ``bool`` (so the rows looked correctable) but NumPy cannot copy them, which the
    host-side correction does. Tracers keep the plain sum, as the docstring says and
    as under ``jax.jit``; the gradient is :math:`\\log(p_i/q_i) + 1`."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    q = jnp.asarray(_Q)

    def total(p: object) -> object:
        return jnp.sum(measure(p, q, validate=validate))

    value, grad = jax.value_and_grad(total)(jnp.asarray(_P))
    assert grad.dtype == jnp.float32
    p64, q64 = np.array(_P), np.array(_Q)
    assert_close(np.asarray(grad), np.log(p64 / q64) + 1, CLOSED_FORM)
    assert_close(np.asarray(value), crossent.kl_divergence(p64, q64), CLOSED_FORM, np.float32)
