"""Float32 soft-target gradients where :math:`c\\,p - \\tilde t` cancels, on every path.

``softmax_cross_entropy_with_targets_grad`` of float32 logits through the generic
(Array API) path formed :math:`c\\,p - \\tilde t` in float32: where the target meets the
(capped, tempered) softmax the entry is a few float32 ulps of :math:`p`, and :math:`p` in
float32 is only good to a few ulps of itself, so such entries were hundreds to tens of
thousands of float32 ulps off (array_api_strict, torch, JAX with x64, and NumPy without
Numba), while the fused NumPy kernel was within one. The oracle: mpmath at 40 digits on
the float32 inputs' exact values, elementwise, in float32 ulps of the truth.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent
from crossent.losses import _cpu_kernels

CAP, TEMPERATURE, Z_LOSS, EPS = 7.0, 1.7, 1e-3, 0.1
ULPS = 1.0  # rounding the float64 entry once (1/2), and its own float64 error
FLOAT64_SLACK = 3e-14  # float64's error of c p and t~ at these logits (|z'| < 20)


def _transformed(z: np.ndarray, options: dict[str, Any]) -> np.ndarray:
    """z' of float32 logits in float64 (no rounding of z itself)."""
    z = z.astype(np.float64)
    if options.get("soft_cap") is not None:
        z = options["soft_cap"] * np.tanh(z / options["soft_cap"])
    return z / options.get("temperature", 1.0)


def _hard_rows(options: dict[str, Any], *, rows: int = 6, classes: int = 40) -> tuple:
    """float32 logits and targets with :math:`\\tilde t_c \\approx c\\,p_c` on many classes:
    :math:`t = \\mathrm{fl}((c\\,p - \\varepsilon/V)/(1 - \\varepsilon))` on the classes where
    that is positive and a few are left to take the rest of the row's mass."""
    rng = np.random.default_rng(20261204)
    z = rng.normal(size=(rows, classes)) * np.array([[1.0], [3.0], [6.0], [0.3], [9.0], [2.0]])
    z = z.astype(np.float32)
    zp = _transformed(z, options)
    lse = np.log(np.exp(zp - zp.max(-1, keepdims=True)).sum(-1, keepdims=True)) + zp.max(
        -1, keepdims=True
    )
    p = np.exp(zp - lse)
    eps = options.get("label_smoothing", 0.0)
    c = 1.0 + 2.0 * options.get("z_loss", 0.0) * lse  # A = 1 to float32 accuracy
    want = (c * p - eps / classes) / (1.0 - eps)
    t = np.where(want > 0, want, 0.0)
    # the three likeliest classes of a row take the rest of its mass, unevenly (its
    # largest entries, against which the cancelling ones are tiny)
    free = np.zeros_like(t, dtype=bool)
    np.put_along_axis(free, np.argsort(-p, axis=-1)[:, :3], True, axis=-1)
    rest = 1.0 - np.where(free, 0.0, t).sum(-1, keepdims=True)
    share = np.where(free, p * rng.uniform(0.5, 1.5, size=p.shape), 0.0)
    t = np.where(free, rest * share / share.sum(-1, keepdims=True), t).astype(np.float32)
    assert (t >= 0).all()
    return z, t


@mpmath.workdps(40)
def _oracle(z: np.ndarray, t: np.ndarray, options: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """:math:`\\partial/\\partial z` of the summed loss, exact to 40 digits: per row
    :math:`((A + 2\\lambda\\,\\mathrm{LSE})\\,p - \\tilde t)\\,\\mathrm{sech}^2(z/s)/T` with
    :math:`\\tilde t = (1-\\varepsilon)t + \\varepsilon/V`, :math:`A = \\sum\\tilde t`; and
    the size of its two terms, :math:`(|c\\,p| + \\tilde t)\\,\\mathrm{sech}^2(z/s)/T`."""
    cap, temp = options.get("soft_cap"), mpmath.mpf(options.get("temperature", 1.0))
    lam, eps = (
        mpmath.mpf(options.get("z_loss", 0.0)),
        mpmath.mpf(options.get("label_smoothing", 0.0)),
    )
    out, size = np.empty(z.shape), np.empty(z.shape)
    v = z.shape[-1]
    for i in range(z.shape[0]):
        zi = [mpmath.mpf(float(x)) for x in z[i]]
        slope = [mpmath.mpf(1)] * v
        if cap is not None:
            s = mpmath.mpf(cap)
            slope = [mpmath.sech(x / s) ** 2 for x in zi]
            zi = [s * mpmath.tanh(x / s) for x in zi]
        zi = [x / temp for x in zi]
        lse = mpmath.log(mpmath.fsum(mpmath.exp(x) for x in zi))
        tt = [(1 - eps) * mpmath.mpf(float(x)) + eps / v for x in t[i]]
        coef = mpmath.fsum(tt) + 2 * lam * lse
        for j in range(v):
            cp = coef * mpmath.exp(zi[j] - lse)
            out[i, j] = float((cp - tt[j]) * slope[j] / temp)
            size[i, j] = float((abs(cp) + tt[j]) * slope[j] / temp)
    return out, size


def _ulps(got: Any, truth: np.ndarray, size: np.ndarray) -> np.ndarray:
    """The error of ``got`` in float32 ulps of ``truth``, less what float64 itself cannot
    resolve: :data:`FLOAT64_SLACK` times the size of the entry's two terms (an entry
    cancelled far past float32's resolution, :math:`10^{-11}` of its terms, is beyond
    the resolution of a float64 computation too: the fused kernel's included)."""
    got = np.asarray(got, dtype=np.float64)
    error = np.maximum(np.abs(got - truth) - FLOAT64_SLACK * size, 0.0)
    return error / np.spacing(np.abs(truth).astype(np.float32)).astype(np.float64)


OPTIONS = {
    "temperature": {"temperature": TEMPERATURE},
    "soft_cap": {"soft_cap": CAP},
    "smoothing": {"label_smoothing": EPS},
    "z_loss": {"z_loss": Z_LOSS},
    "all": {"label_smoothing": EPS, "soft_cap": CAP, "temperature": TEMPERATURE, "z_loss": Z_LOSS},
}


def _numpy(z: np.ndarray, t: np.ndarray) -> tuple[Any, Any, Callable[[Any], np.ndarray]]:
    return z, t, np.asarray


def _strict(z: np.ndarray, t: np.ndarray) -> tuple[Any, Any, Callable[[Any], np.ndarray]]:
    xs = pytest.importorskip("array_api_strict")
    return xs.asarray(z), xs.asarray(t), lambda g: np.from_dlpack(g)


def _torch(z: np.ndarray, t: np.ndarray) -> tuple[Any, Any, Callable[[Any], np.ndarray]]:
    torch = pytest.importorskip("torch")
    return torch.from_numpy(z), torch.from_numpy(t), lambda g: g.numpy()


def _jax(z: np.ndarray, t: np.ndarray) -> tuple[Any, Any, Callable[[Any], np.ndarray]]:
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)  # as the suite's backend fixture has it
    import jax.numpy as jnp

    return jnp.asarray(z), jnp.asarray(t), np.asarray


BACKENDS = {"numpy": _numpy, "numpy_no_numba": _numpy, "array_api_strict": _strict}
BACKENDS.update(torch=_torch, jax=_jax)


@pytest.mark.parametrize("options", list(OPTIONS))
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_float32_gradient_within_ulps_where_p_meets_target(
    backend: str, options: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend == "numpy" and not _cpu_kernels.available():
        pytest.skip("needs Numba")
    if backend == "numpy_no_numba":
        monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
    opts = OPTIONS[options]
    z, t = _hard_rows(opts)
    truth, size = _oracle(z, t, opts)
    zs, ts, back = BACKENDS[backend](z, t)
    got = back(crossent.softmax_cross_entropy_with_targets_grad(zs, ts, reduction="sum", **opts))
    assert got.dtype == np.float32
    ulps = _ulps(got, truth, size)
    # the rows are hard: many entries are far below the row's largest
    assert (np.abs(truth) < 1e-4 * np.abs(truth).max(-1, keepdims=True)).sum() >= 20
    worst = np.unravel_index(np.argmax(ulps), ulps.shape)
    assert ulps.max() <= ULPS, (worst, got[worst], truth[worst], ulps.max())


def test_the_oracle_is_crossents_float64_gradient() -> None:
    """The oracle's formula is the float64 call's, within :data:`FLOAT64_SLACK`."""
    opts = OPTIONS["all"]
    z, t = _hard_rows(opts)
    g64 = crossent.softmax_cross_entropy_with_targets_grad(
        z.astype(np.float64), t.astype(np.float64), reduction="sum", validate=False, **opts
    )
    truth, size = _oracle(z, t, opts)
    assert (np.abs(g64 - truth) <= FLOAT64_SLACK * size).all()


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs jax")
def test_jitted_float32_gradient_within_ulps() -> None:
    """``jax.jit`` (x64 on) traces the float64 call: within the same bar as eager."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    opts = OPTIONS["all"]
    z, t = _hard_rows(opts)
    truth, size = _oracle(z, t, opts)

    def grad(a: Any, b: Any) -> Any:
        return crossent.softmax_cross_entropy_with_targets_grad(
            a, b, reduction="sum", validate=False, **opts
        )

    jitted = jax.jit(grad)(jnp.asarray(z), jnp.asarray(t))
    assert jitted.dtype == jnp.float32
    assert _ulps(jitted, truth, size).max() <= ULPS


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs jax")
def test_jax_without_x64_stays_float32() -> None:
    """Without ``jax_enable_x64`` JAX has no float64: the call runs as before, in
    float32 (the documented limit), eager and jitted."""
    import jax

    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        import jax.numpy as jnp

        opts = OPTIONS["all"]
        z, t = _hard_rows(opts)

        def grad(a: Any, b: Any) -> Any:
            return crossent.softmax_cross_entropy_with_targets_grad(a, b, validate=False, **opts)

        eager = grad(jnp.asarray(z), jnp.asarray(t))
        jitted = jax.jit(grad)(jnp.asarray(z), jnp.asarray(t))
        assert eager.dtype == jitted.dtype == jnp.float32
        assert np.isfinite(np.asarray(jitted)).all()
    finally:
        jax.config.update("jax_enable_x64", before)
