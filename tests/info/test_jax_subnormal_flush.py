"""Hostile pass (apileft3): JAX float64 on the CPU flushes subnormals to zero.

``cross_entropy([0.5, 0.5], [5e-324, 1.0])`` is ``inf`` on JAX arrays (XLA computes
with flush-to-zero: ``log(5e-324)`` is ``-inf``), 372.22 elsewhere (mpmath: :math:`-\\tfrac12
\\log(5\\cdot 10^{-324})`). crossent computes JAX arrays with JAX; the behaviour is
documented in the README's "Array libraries" (missing on main, 4d024a0: the README test
below fails there) and pinned here, so that a change of JAX's (or a host path of
crossent's) shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent

README = Path(__file__).resolve().parents[2] / "README.md"
Q = [5e-324, 1.0]
P = [0.5, 0.5]


def _truth() -> float:
    with mpmath.workdps(50):
        return float(-mpmath.mpf(0.5) * mpmath.log(mpmath.mpf(Q[0])))


def test_readme_documents_the_flush() -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert "JAX on the CPU flushes subnormal float64 numbers to zero" in text
    assert "`q = [5e-324, 1.0]` is `inf` on JAX arrays" in text


def test_numpy_and_torch_keep_subnormal_probabilities() -> None:
    assert crossent.cross_entropy(np.array(P), np.array(Q)) == pytest.approx(_truth(), rel=1e-15)
    torch = pytest.importorskip("torch")
    got = crossent.cross_entropy(
        torch.tensor(P, dtype=torch.float64), torch.tensor(Q, dtype=torch.float64)
    )
    assert float(got) == pytest.approx(_truth(), rel=1e-15)


def test_jax_flushes_subnormal_probabilities_to_zero(jax_x64: Any) -> None:
    """The documented behaviour: a subnormal q is 0 on JAX's CPU (inf, where NumPy is
    finite); a normal one is exact."""
    jax = jax_x64
    jnp = pytest.importorskip("jax.numpy")
    if jax.default_backend() != "cpu":
        pytest.skip("the flush is XLA's CPU behaviour")
    got = crossent.cross_entropy(jnp.asarray(P), jnp.asarray(Q))
    assert float(got) == float("inf")
    assert float(crossent.entropy(jnp.asarray([1e-310, 1.0]))) == 0.0
    normal = crossent.cross_entropy(jnp.asarray(P), jnp.asarray([1e-300, 1.0]))
    with mpmath.workdps(50):
        truth = float(-mpmath.mpf(0.5) * mpmath.log(mpmath.mpf(1e-300)))
    assert float(normal) == pytest.approx(truth, rel=1e-15)
