"""KL of float32 JAX arrays without x64 (JAX's default): the screen before the exact
pass (issue 13, branch jaxkl2).

Branch jaxkl1 summed the masses' words exactly (``exp_triple32``, 76-bit extraction) on
every row: 8x-30x the plain float32 sum's time on random rows too. Now
``_kl_mixed._narrow_screen`` takes the masses from the words at hand with a bound, and
``kl_narrow`` keeps that fast value where every row's bound passes (one
``jax.lax.cond``), else the exact value on every row. These tests pin the branch taken
(by the result's bits: the fast and the exact value differ in their last bits on some
rows) and the fast value's accuracy against mpmath (30 digits of the given float32
values). They fail on main, which has no screen (``_narrow_parts`` is new).
"""

from __future__ import annotations

from typing import Any

import mpmath
import numpy as np
import pytest

from oracles import float32_form as _form
from oracles import row_probabilities

jax = pytest.importorskip("jax")

EPS32 = float(np.finfo(np.float32).eps)


def _truth(a: np.ndarray, fa: str, b: np.ndarray, fb: str) -> list[mpmath.mpf]:
    out = []
    with mpmath.workdps(30):
        for x, y in zip(a, b, strict=True):
            p = row_probabilities(x.astype(np.float64), fa)
            q = row_probabilities(y.astype(np.float64), fb)
            out.append(mpmath.fsum(s * mpmath.log(s / t) for s, t in zip(p, q, strict=True) if s))
    return out


def test_jax_float32_kl_screen_branch(no_x64: Any) -> None:
    """Logits against log-probabilities: random rows take the fast value (every row
    passes; its bits are ``kl_narrow``'s, within 1.5 ulps of mpmath); rows 1e-6 apart
    fail the screen and take the exact value (within 2.5 ulps, where the fast value is
    far off), and so does a batch of random rows with one such row (branch jaxkl3: that
    row's chunk exact, the others the fast value)."""
    from crossent.info._kl_mixed import _narrow_parts, kl_narrow

    jnp = no_x64
    fa, fb = "logits", "log_probs"
    rng = np.random.default_rng(72)
    z = rng.standard_normal((4, 16)) * 3
    far = np.roll(z, 1, axis=0)
    near = z + 1e-6 * rng.standard_normal(z.shape)
    mixed = far.copy()
    mixed[2] = near[2]

    def pieces(a: Any, b: Any) -> tuple[Any, Any, Any]:
        fast, passed, _ = _narrow_parts(a, fa, b, fb, xp=jnp)
        return fast, passed, kl_narrow(a, fa, b, fb, xp=jnp)

    call = jax.jit(pieces)
    a = _form(z, fa)
    for other, kind in ((far, "random"), (near, "near"), (mixed, "mixed")):
        b = _form(other, fb)
        fast, passed, got = (np.asarray(v) for v in call(jnp.asarray(a), jnp.asarray(b)))
        truth = _truth(a, fa, b, fb)
        ulps = np.array([_ulps(g, t) for g, t in zip(got, truth, strict=True)])
        fast_ulps = np.array([_ulps(g, t) for g, t in zip(fast, truth, strict=True)])
        if kind == "random":
            assert passed.all()
            assert np.array_equal(got, fast)  # (the fast branch)
            assert ulps.max() <= 1.5, ulps
            continue
        assert not passed[2]
        assert ulps.max() <= 2.5, ulps  # (the exact branch where a row fails)
        if kind == "mixed":
            assert passed[[0, 1, 3]].all()
        else:
            assert fast_ulps.max() > 5.0, fast_ulps


def _ulps(got: float, truth: mpmath.mpf) -> float:
    return float(abs(mpmath.mpf(float(got)) - truth) / (abs(truth) * EPS32))
