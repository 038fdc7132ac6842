"""``jax.grad`` of ``crossent.sigmoid_focal_loss`` in the targets (issue 13, branch
torchrev1; the JAX side of focal4's torch fix): JAX differentiated the two softplus
terms of the cross-entropy (:math:`\\pi\\,\\mathrm{sp}(-x) - \\mathrm{sp}(x)`) and the
modulation's :math:`\\sigma(-x) - \\sigma(x)`, which cancel for small :math:`|x|`
(float32 logit ``-5.353383e-4``, target 0.3, at ``gamma=0``: ``5.353093e-4`` for
``5.353383e-4``; logit ``1e-10`` at ``gamma=2``: ``-5.96e-8`` for ``-5.97e-11``). 3 of 3
fail on main (float64 at ``gamma=2``, ``alpha=0.25``, within the bound there, is left
out: each case is seconds of JAX's first dispatches). JAX
tracers now take ``losses._sigmoid.target_slope`` through a zero-valued term
(``_stopped_target``).
Oracle: mpmath's derivative of the closed form (``test_issue13_torch_focal_target_slope``'s
``_truth``, repeated here so that the file runs without torch)."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

import crossent  # noqa: E402

LOGITS = [-5.353383e-4, 1e-3, 3e-6, 1e-10, -0.75, 2.5, 12.0]
TARGETS = [0.3, 0.7, 0.5, 0.9, 0.2, 0.05, 0.99]


def _truth(x: float, t: float, gamma: float, alpha: float | None) -> float:
    """:math:`\\partial\\,\\mathrm{FL}/\\partial t` of float ``x`` and ``t`` (mpmath)."""

    def loss(tm: mpmath.mpf) -> mpmath.mpf:
        xm = mpmath.mpf(x)
        s, s_neg = 1 / (1 + mpmath.exp(-xm)), 1 / (1 + mpmath.exp(xm))
        bce = -(tm * mpmath.log(s) + (1 - tm) * mpmath.log(s_neg))
        value = (tm * s_neg + (1 - tm) * s) ** gamma * bce
        return value if alpha is None else (alpha * tm + (1 - alpha) * (1 - tm)) * value

    with mpmath.workdps(60):
        return float(mpmath.diff(loss, mpmath.mpf(t)))


@pytest.mark.parametrize(
    ("dtype", "gamma", "alpha", "ulps"),
    [("float32", 0.0, None, 0), ("float64", 0.0, None, 0), ("float32", 2.0, 0.25, 4)],
)
def test_jax_focal_target_gradient_against_mpmath(
    dtype: str, gamma: float, alpha: float | None, ulps: int
) -> None:
    """``jax.grad`` in the targets (and, once, ``jax.jit`` of it, which XLA fuses) within
    ``ulps`` of the truth; the loss and the logits' gradient are the bits of the call
    whose targets are concrete (not traced: the old graph)."""
    jax.config.update("jax_enable_x64", True)  # as the suite's backend fixture has it
    x = jnp.asarray(np.array(LOGITS, dtype=dtype))
    t = jnp.asarray(np.array(TARGETS, dtype=dtype))

    def loss(x: object, t: object, validate: bool = True) -> object:
        options = {"alpha": alpha, "gamma": gamma, "validate": validate}
        return crossent.sigmoid_focal_loss(x, t, reduction="sum", **options)

    value, (gx, gt) = jax.value_and_grad(loss, argnums=(0, 1))(x, t)
    got = [gt]
    if dtype == "float32" and gamma:  # (one XLA compilation: the traced targets under jit)
        got.append(jax.jit(jax.grad(lambda x, t: loss(x, t, validate=False), argnums=1))(x, t))
    eps = float(np.finfo(dtype).eps)
    x64, t64 = np.asarray(x, dtype=np.float64), np.asarray(t, dtype=np.float64)
    for i in range(len(LOGITS)):
        true = _truth(float(x64[i]), float(t64[i]), gamma, alpha)
        bound = ulps * eps * abs(true) + eps / 2 * abs(true)
        for g in got:
            assert abs(float(g[i]) - true) <= bound, (i, float(g[i]), true)
    plain_value, plain_gx = jax.value_and_grad(lambda x: loss(x, t))(x)
    assert np.asarray(value).tobytes() == np.asarray(plain_value).tobytes()
    assert np.array_equal(np.asarray(gx), np.asarray(plain_gx))
