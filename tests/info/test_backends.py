"""The measures on every installed array library: same values, same kind of array, dtype policy."""

from __future__ import annotations

import numpy as np
import pytest

import crossent

from conftest import Backend
from tolerances import CLOSED_FORM, FLOAT32_KERNEL, SUM

RNG = np.random.default_rng(4)
P = RNG.dirichlet(np.full(7, 0.5), size=(3, 5))
Q = RNG.dirichlet(np.full(7, 0.5), size=(3, 5))
P[0, 0, :3] = 0.0  # zeros on both sides exercise the limits
P[0, 0] /= P[0, 0].sum()
Q[0, 0, :2] = 0.0
Q[0, 0] /= Q[0, 0].sum()
LOGITS = RNG.normal(size=(3, 5, 7)) * 5

CALLS = {
    "entropy": lambda p, q, z: crossent.entropy(p),
    "entropy_logits": lambda p, q, z: crossent.entropy(z, p_form="logits"),
    "cross_entropy": lambda p, q, z: crossent.cross_entropy(p, q),
    "cross_entropy_bits": lambda p, q, z: crossent.cross_entropy(p, q, base=2),
    "cross_entropy_logits": lambda p, q, z: crossent.cross_entropy(p, z, q_form="logits"),
    "kl_divergence": lambda p, q, z: crossent.kl_divergence(p, q),
    "kl_axis0": lambda p, q, z: crossent.kl_divergence(p[0, ...].T, q[0, ...].T, axis=0),
    "kl_logits": lambda p, q, z: crossent.kl_divergence(z, q, p_form="logits"),
    "kl_log_probs": lambda p, q, z: crossent.kl_divergence(
        p, z - z, q_form="log_probs", validate=False
    ),
    "js_divergence": lambda p, q, z: crossent.js_divergence(p, q),
    "perplexity": lambda p, q, z: crossent.perplexity(q),
    "surprisal": lambda p, q, z: crossent.surprisal(q),
    "binary_entropy": lambda p, q, z: crossent.binary_entropy(q),
    "binary_cross_entropy": lambda p, q, z: crossent.binary_cross_entropy(p, q),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_same_values_and_array_kind_on_every_backend(backend: Backend, name: str) -> None:
    call = CALLS[name]
    expected = np.asarray(call(P, Q, LOGITS))
    got = call(backend.asarray(P), backend.asarray(Q), backend.asarray(LOGITS))
    assert isinstance(got, backend.array_type)
    got_np = backend.to_numpy(got)
    assert got_np.dtype == np.float64
    np.testing.assert_allclose(got_np, expected, **SUM.tol())


def test_decomposition_on_every_backend(backend: Backend) -> None:
    d = crossent.cross_entropy_decomposition(backend.asarray(P), backend.asarray(Q))
    for part, expected in zip(d, crossent.cross_entropy_decomposition(P, Q), strict=True):
        assert isinstance(part, backend.array_type)
        np.testing.assert_allclose(backend.to_numpy(part), expected, **SUM.tol())


def test_float32_in_float32_out(backend: Backend) -> None:
    p32, q32 = P.astype(np.float32), Q.astype(np.float32)
    got = crossent.cross_entropy(backend.asarray(p32), backend.asarray(q32))
    got_np = backend.to_numpy(got)
    assert got_np.dtype == np.float32
    truth = crossent.cross_entropy(p32.astype(np.float64), q32.astype(np.float64), validate=False)
    np.testing.assert_allclose(got_np, truth, **FLOAT32_KERNEL.tol(np.float32))


def test_integer_input_computes_in_default_float(backend: Backend) -> None:
    got = backend.to_numpy(crossent.entropy(backend.asarray(np.array([1, 0, 0]))))
    assert got == 0.0
    assert got.dtype in (np.float32, np.float64)


def test_python_scalars_and_lists_are_numpy() -> None:
    assert isinstance(crossent.surprisal(0.125, base=2), np.float64)
    assert isinstance(crossent.entropy([0.5, 0.5]), np.float64)
    assert isinstance(crossent.entropy([[0.5, 0.5]]), np.ndarray)


def test_lists_mix_with_arrays_of_any_library(backend: Backend) -> None:
    got = crossent.cross_entropy(backend.asarray(P[0, 0]), list(Q[0, 0]))
    assert isinstance(got, backend.array_type)
    assert float(backend.to_numpy(got)) == pytest.approx(
        crossent.cross_entropy(P[0, 0], Q[0, 0]), **CLOSED_FORM.rel_abs(backend.to_numpy(got).dtype)
    )
