"""Far gaps of ``cross_entropy`` and ``kl_divergence`` under ``jax.jit`` (branch jaxexact1).

Q's logits spread from -1e308 to 1e308, so :math:`\\log q_c = -2\\cdot 10^{308}` overflows
in ``log_softmax`` and the common path's row is ``inf``; eager JAX and NumPy form such a
row again on host copies (1.6587e308 bits), which a traced array has none of, so the
jitted call returned ``inf``. Now the row is formed again in JAX itself
(``_numerics.far_gap_cross_entropy``). Oracle: mpmath at 40 digits. Fails on main.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import crossent

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

_INF = math.inf
LOG_P = [-691.9693329112844, -_INF, -1.3289909790084031, -_INF, -_INF, -1.4206185044443103, -_INF,
         -2.3877204730639185, -2.472409370335631, -2.5608082986788934, -_INF, -_INF, -_INF, -_INF,
         -1.4261634927054148, -_INF, -_INF]  # fmt: skip
LOGITS = [0.0, -1e308, -745.0, 5.0, -745.0, -1e308, 0.0, 1e308, 5.0, 5.0, -1e308, 0.0, 5.0,
          5.0, -745.0, -745.0, -1e308]  # fmt: skip


def _bits(kl: bool) -> float:
    """H(P, Q) (or D(P||Q)) in bits, in mpmath at 40 digits."""
    with mpmath.workdps(40):
        x = [mpmath.mpf(v) for v in LOGITS]
        top = max(x)
        lse = top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in x))
        total = mpmath.mpf(0)
        for lp, v in zip(LOG_P, x, strict=True):
            if lp != -_INF:
                p = mpmath.exp(mpmath.mpf(lp))
                total += p * (lse - v) + (p * mpmath.mpf(lp) if kl else 0)
        return float(total / mpmath.log(2))


def test_jitted_far_gap_row_is_formed_again() -> None:
    jax.config.update("jax_enable_x64", True)
    kw = {"p_form": "log_probs", "q_form": "logits", "base": 2}
    p = jnp.asarray(np.array([LOG_P, [0.0] + [-_INF] * 16]))  # a second, ordinary row
    q = jnp.asarray(np.array([LOGITS, [0.0] * 17]))

    def both(a: object, b: object) -> tuple[object, object]:  # (one compile)
        return (
            crossent.cross_entropy(a, b, validate=False, **kw),
            crossent.kl_divergence(a, b, validate=False, **kw),
        )

    for kl, got in enumerate(jax.jit(both)(p, q)):
        f = crossent.kl_divergence if kl else crossent.cross_entropy
        values = np.asarray(got)
        assert values[0] == pytest.approx(_bits(bool(kl)), rel=1e-14)
        assert values[0] == f(np.array(LOG_P), np.array(LOGITS), **kw)  # NumPy's bits
        assert values[1] == pytest.approx(math.log2(17), rel=1e-15)
