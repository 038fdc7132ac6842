"""KL of float32 JAX arrays without x64: the fast value without double-float inputs
(issue 13, branch jaxkl4).

Branches jaxkl2-jaxkl3 screened every row with the Bregman terms of float32 pairs
(``exp_pair32`` of each entry, about 150 elementwise operations, and more): random rows
were 5x-9x the plain float32 sum's time. ``_kl_mixed._narrow_quick`` forms the
definition's sum from an exponential split into an exact head and a small part and a
table logarithm, with a rigorous bound against the KL of the given float32 values;
rows it does not take go on to the old screen and the exact words. These tests pin its
accuracy against mpmath (random rows: within 5/8 ulp, as its bound promises), that
rows it cannot take (NaN, weights out of range, nearly equal rows) fail it, and that
its ``rho`` values traced equal its table's. They fail
on main, which has no ``_narrow_quick``.
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
PAIRS = (("probs", "logits"), ("logits", "log_probs"), ("log_probs", "probs"))


def _ulps(got: float, x: np.ndarray, fa: str, y: np.ndarray, fb: str) -> float:
    with mpmath.workdps(30):
        p = row_probabilities(x.astype(np.float64), fa)
        q = row_probabilities(y.astype(np.float64), fb)
        truth = mpmath.fsum(s * mpmath.log(s / t) for s, t in zip(p, q, strict=True) if s)
        return float(abs(mpmath.mpf(float(got)) - truth) / (abs(truth) * EPS32))


@pytest.mark.parametrize(("fa", "fb"), PAIRS)
def test_quick_value_of_random_rows(no_x64: Any, fa: str, fb: str) -> None:
    """Random rows pass ``_narrow_quick``, its value within 5/8 ulp of mpmath (its
    bound's promise); nearly equal rows and a row with a NaN fail it (``kl_narrow``'s
    value of such rows: ``test_issue13_jax_float32_kl_screen.py`` and
    ``test_issue13_jax_float32_exact.py``; only the quick path is compiled here)."""
    from crossent.info._kl_mixed import _narrow_quick

    jnp = no_x64
    rng = np.random.default_rng(74)
    z = rng.standard_normal((4, 16)) * 3
    far = np.roll(z, 1, axis=0)
    near = z + 1e-6 * rng.standard_normal(z.shape)
    call = jax.jit(lambda x, y: _narrow_quick(x, fa, y, fb, xp=jnp))
    a = _form(z, fa)
    b = _form(far, fb)
    fast, passed = (np.asarray(v) for v in call(jnp.asarray(a), jnp.asarray(b)))
    assert passed.all()
    worst = max(_ulps(g, x, fa, y, fb) for g, x, y in zip(fast, a, b, strict=True))
    assert worst <= 0.625, worst
    b = _form(near, fb)
    b[1] = _form(far, fb)[1]
    b[1, 3] = np.nan
    _, passed = call(jnp.asarray(a), jnp.asarray(b))
    assert not np.asarray(passed).any()


def test_quick_out_of_range_weights_fail(no_x64: Any) -> None:
    """A weight of P out of the split exponential's range (a log-probability below
    -60) fails the row; the others pass; ``_log_rho`` traced equals its table."""
    from crossent.info import _kl_mixed

    jnp = no_x64
    rng = np.random.default_rng(75)
    z = rng.standard_normal((4, 16)) * 3
    a = _form(z, "log_probs")
    b = _form(np.roll(z, 1, axis=0), "logits")
    a[2, 5] = -61.0
    _, passed = jax.jit(lambda x, y: _kl_mixed._narrow_quick(x, "log_probs", y, "logits", xp=jnp))(
        jnp.asarray(a), jnp.asarray(b)
    )
    assert np.asarray(passed).tolist() == [True, True, False, True]
    table = _kl_mixed._log_split_constants()[1]
    traced = jax.jit(lambda j: _kl_mixed._log_rho(j, xp=jnp))(jnp.arange(256.0))
    assert np.array_equal(np.asarray(traced), table)
