"""Hostile pass (apileft3): JAX float64 on the CPU flushes subnormals to zero.

``cross_entropy([0.5, 0.5], [5e-324, 1.0])`` is ``inf`` on JAX arrays (XLA computes
with flush-to-zero: ``log(5e-324)`` is ``-inf``), 372.22 elsewhere (mpmath: :math:`-\\tfrac12
\\log(5\\cdot 10^{-324})`). crossent computes JAX arrays with JAX; the behaviour is
documented in the README's "Array libraries" (missing on main, 4d024a0: the README test
below fails there) and pinned here, so that a change of JAX's (or a host path of
crossent's) shows.
"""

from __future__ import annotations

import math
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


DIFFERS = Path(__file__).resolve().parents[2] / "docs" / "differs.md"

# docs/differs.md, "JAX on the CPU: subnormal numbers are 0": a subnormal probability
# or option times a huge log term, a finite value of ordinary size that JAX gives as 0
# (branch leftovers10). Each call with NumPy's exact value: 1e-310 * 1e300 (times 1/2
# for label smoothing over two classes), or 710 * exp(-710).
_FINITE_LOST = [
    ("cross_entropy", ([1.0, 1e-310], [0.0, -1e300]), {"q_form": "logits"}, 1e-10),
    ("kl_divergence", ([1.0, 1e-310], [0.0, -1e300]), {"q_form": "logits"}, 1e-10),
    ("softmax_cross_entropy_with_targets", ([[0.0, -1e300]], [[1.0, 1e-310]]), {}, 1e-10),
    ("sigmoid_cross_entropy", ([[-1e300]], [[1e-310]]), {}, 1e-10),
    (
        "distillation_loss",
        ([[0.0, -1e300]], [[1.0, 1e-310]]),
        {"teacher_form": "probs"},
        1e-10,
    ),
    ("entropy", ([0.0, -710.0],), {"p_form": "log_probs"}, 710 * math.exp(-710)),
]


def test_differs_documents_the_finite_values_lost() -> None:
    text = " ".join(DIFFERS.read_text(encoding="utf-8").split())
    assert "JAX gives **0 for a finite value of ordinary size**" in text
    for name, *_ in _FINITE_LOST:
        assert f"`{name}(" in text or f"(and `{name}`)" in text, name


@pytest.mark.parametrize(
    ("name", "args", "options", "exact"), _FINITE_LOST, ids=lambda v: str(v)[:24]
)
def test_jax_loses_a_finite_value_where_numpy_keeps_it(
    jax_x64: Any, name: str, args: tuple[Any, ...], options: dict[str, str], exact: float
) -> None:
    jnp = pytest.importorskip("jax.numpy")
    if jax_x64.default_backend() != "cpu":
        pytest.skip("the flush is XLA's CPU behaviour")
    function = getattr(crossent, name)
    on_numpy = function(*(np.asarray(a, dtype=np.float64) for a in args), **options)
    on_jax = function(*(jnp.asarray(a, dtype=jnp.float64) for a in args), **options)
    assert float(np.sum(on_numpy)) == pytest.approx(exact, rel=1e-13)
    assert float(jnp.sum(on_jax)) == 0.0
