"""Precision policy: low-precision inputs compute in float32, long float32 sums stay accurate."""

from __future__ import annotations

import numpy as np
import pytest

import crossent

from conftest import Backend
from tolerances import LOW_PRECISION, ulps

K = 100_000


def _float32_rows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(K), size=4).astype(np.float32)
    q = rng.dirichlet(np.ones(K), size=4).astype(np.float32)
    return p, q


def test_sums_over_100k_float32_classes_keep_float32_accuracy(backend: Backend) -> None:
    p, q = _float32_rows()
    # Truth: the same float32 values in float64. A plain float32 running sum of 1e5
    # terms can be off by ~1e5 * 6e-8 = 6e-3 relative; we ask for a few float32 ulps.
    measures = [crossent.entropy, crossent.cross_entropy, crossent.kl_divergence]
    if backend.name == "jax":
        # The KL of float32 rows takes its exact correction (``_measures._kl_nats``), the
        # same namespace code as PyTorch's and array-api-strict's, checked here at 1e5
        # classes; run eagerly, JAX compiled some 200 programs for it (7.5 s of CPU).
        # JAX's own correction: test_issue10_info.py's nearly equal rows.
        measures.remove(crossent.kl_divergence)
    for f in measures:
        args = (p,) if f is crossent.entropy else (p, q)
        truth = f(*(a.astype(np.float64) for a in args), validate=False)
        got = backend.to_numpy(f(*(backend.asarray(a) for a in args)))
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, truth, rtol=ulps(4, np.float32))


def test_uniform_float32_over_100k_classes() -> None:
    p = np.full(K, 1 / K, dtype=np.float32)
    truth = float(-K * np.float64(p[0]) * np.log(np.float64(p[0])))  # of the float32 values
    assert crossent.entropy(p) == pytest.approx(truth, rel=ulps(1, np.float32), abs=0)


def test_jax_without_x64_accumulates_accurately_in_float32() -> None:
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from crossent._xp import accumulation_dtype

    p, _ = _float32_rows()
    truth = crossent.entropy(p.astype(np.float64), validate=False)
    # In this process (it was a fresh one: about 4 s of CPU to import JAX and crossent
    # again): the setting is read on each call (as test_float32_generic_grad_cancellation.py's
    # test_jax_without_x64_stays_float32 does), so JAX has no float64 here.
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        assert accumulation_dtype(jnp.float32, xp=jnp, device=None) == jnp.float32
        got = np.asarray(crossent.entropy(jnp.asarray(p)))
    finally:
        jax.config.update("jax_enable_x64", before)
    assert got.dtype == np.float32, got.dtype
    assert np.max(np.abs(got / truth - 1)) < 8 * np.finfo(np.float32).eps


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
def test_half_precision_torch_computes_and_returns_float32(dtype_name: str) -> None:
    torch = pytest.importorskip("torch")
    dtype = getattr(torch, dtype_name)
    rng = np.random.default_rng(6)
    logits = torch.from_numpy(rng.normal(size=(8, 1000)) * 5).to(dtype)
    target = torch.softmax(torch.from_numpy(rng.normal(size=(8, 1000))), dim=-1)
    got = crossent.cross_entropy(target.to(torch.float32), logits, q_form="logits")
    assert got.dtype == torch.float32
    # The low-precision inputs, exactly widened, give the float32 answer.
    exact = crossent.cross_entropy(target.double(), logits.double(), q_form="logits")
    torch.testing.assert_close(got.double(), exact, **LOW_PRECISION.tol(torch.float32))
    # Against torch's own computation in the low-precision dtype, ours is no worse.
    naive = -(target.to(dtype) * torch.log_softmax(logits, dim=-1)).sum(-1).double()
    assert (got.double() - exact).abs().max() <= (naive - exact).abs().max()


def test_half_precision_probabilities_use_their_own_tolerance() -> None:
    torch = pytest.importorskip("torch")
    p = torch.softmax(torch.randn(4, 1000, generator=torch.Generator().manual_seed(0)), -1)
    got = crossent.entropy(p.to(torch.bfloat16))  # bf16 rows sum to 1 only to ~4e-3
    assert got.dtype == torch.float32


def test_float16_numpy_computes_in_float32() -> None:
    p = np.array([0.25, 0.25, 0.5], dtype=np.float16)
    assert crossent.entropy(p).dtype == np.float32
