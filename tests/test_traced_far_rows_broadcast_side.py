"""A broadcast side's gradient under a transformation is NaN where a row is far
(branch mutation6).

``_traced_far_rows.poisoned`` gives an input with the classes' dimension NaN in the far
rows only, and any other input (a side broadcast over the rows) NaN wholly when some row
is far. Every test had both sides of the rows' shape, so the mutants ``jnp.any(far)`` ->
``jnp.all(far)`` (JAX) and ``far.any()`` -> ``far.all()`` (PyTorch) survived
(tests/MUTATION.md, mutation4): with one far row in three they left the common path's
gradient, ``[1.8676, 1.1676]`` here, whose second entry is wrong (truth, mpmath: above
float64's range, the far row's ``-log softmax(x)_1 = 3.4e308``). Passes on main; guards
those mutants.
"""

from __future__ import annotations

import warnings
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
torch = pytest.importorskip("torch")
func = pytest.importorskip("torch.func")

X = np.array([[1.7e308, -1.7e308], [0.0, 1.0], [0.5, 0.2]])  # row 0 is far
P = np.array([0.6, 0.4])  # broadcast over the rows


pytestmark = pytest.mark.usefixtures("jax_x64")


def _total(p: Any, x: Any) -> Any:
    return crossent.cross_entropy(p, x, q_form="logits", validate=False).sum()


def _truth() -> list[Any]:
    """d/dp of sum_i sum_c -p_c log softmax(x_i)_c = sum_i -log softmax(x_i), exactly."""
    with mpmath.workdps(50):
        out = [mpmath.mpf(0), mpmath.mpf(0)]
        for row in X:
            x = [mpmath.mpf(float(v)) for v in row]
            top = max(x)
            log_total = top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in x))
            out = [o + log_total - v for o, v in zip(out, x, strict=True)]
        return out


@pytest.mark.parametrize("transform", ["jax.grad", "jax.jit(jax.grad)", "torch.func.grad"])
def test_broadcast_side_gradient_with_a_far_row_is_the_truth_or_inf(transform: str) -> None:
    truth = _truth()
    assert truth[1] > np.finfo(np.float64).max  # no finite float64 answer is right
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the common path's overflow
        if transform == "torch.func.grad":
            got = func.grad(_total)(torch.tensor(P), torch.tensor(X)).numpy()
        else:
            g = jax.grad(_total)
            g = jax.jit(g) if "jit" in transform else g
            got = np.asarray(g(jnp.asarray(P), jnp.asarray(X)))
    assert got.shape == (2,)
    assert got.dtype == np.float64
    # Since branch jaxexact1 the far row is formed again in the traced namespace: the
    # first entry is the truth, the second overflows to inf, its correct rounding (it
    # was NaN, both entries, before).
    assert got[0] == pytest.approx(float(truth[0]), rel=1e-14)
    assert got[1] == np.inf


@pytest.mark.parametrize("transform", ["jax.grad", "torch.func.grad"])
def test_broadcast_side_gradient_without_a_far_row_is_the_truth(transform: str) -> None:
    """The rows that are not far: the gradient of the broadcast side is finite and exact."""
    x = X[1:]
    with mpmath.workdps(50):
        truth = [mpmath.mpf(0), mpmath.mpf(0)]
        for row in x:
            r = [mpmath.mpf(float(v)) for v in row]
            lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in r))
            truth = [t + lse - v for t, v in zip(truth, r, strict=True)]
    if transform == "torch.func.grad":
        got = func.grad(_total)(torch.tensor(P), torch.tensor(x)).numpy()
    else:
        got = np.asarray(jax.grad(_total)(jnp.asarray(P), jnp.asarray(x)))
    np.testing.assert_allclose(got, [float(t) for t in truth], rtol=1e-14, atol=0)
