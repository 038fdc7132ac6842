"""Jensen-Shannon divergence of nearly equal float32 rows on JAX without x64 (JAX's
default, where there is no float64), issue 13, branch jaxf32.

A side of logits or log-probabilities against another form was computed from float32
probabilities and log-partitions, each rounded to :math:`u` of itself, against a JS
of :math:`r^2/8` for rows :math:`r` apart: rows 1e-7 apart were up to 1.6e8 float32
ulps off (``benchmarks/check_jax_float32_ulps.py``). Now the other side's probabilities
are float32 pairs (``_double_double.exp_pair32``, normalised by
``excess_of_pairs32``), and logits against log-probabilities take the corrected
log-ratios with the log-probabilities' excess from those pairs.

Oracle: mpmath at 50 digits of the given float32 values (a logits row's exact softmax,
a log-probabilities row's exact exponentials, not renormalised). One ``jax.jit`` a pair
of forms over a batch of rows (eager JAX costs a compile an operation).
"""

from __future__ import annotations

import functools
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent

from oracles import row_probabilities

jax = pytest.importorskip("jax")

ULPS = 3.0  # measured at most 2.5 (the float32 terms' own rounding; probs/probs: 1.5)
NOISES = (1e-7, 1e-5, 1e-3)


def _form(z: np.ndarray, form: str) -> np.ndarray:
    if form == "logits":
        return z
    z64 = z.astype(np.float64)
    shifted = z64 - z64.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return (log_p if form == "log_probs" else np.exp(log_p)).astype(np.float32)


@functools.cache
def _rows(
    form_a: str, form_b: str, measure: str = "js"
) -> tuple[np.ndarray, np.ndarray, tuple[mpmath.mpf, ...]]:
    """Rows of 2 and 40 classes (logits N(0, 1), the other side plus noise 1e-7, 1e-5,
    1e-3), padded to 40 with ``-inf`` logits (zero probabilities), and their JS (or
    KL)."""
    rng = np.random.default_rng(2026_12_07)
    a_rows, b_rows, truths = [], [], []
    for classes in (2, 40):
        for noise in NOISES:
            z = rng.standard_normal((2, classes)).astype(np.float32)
            w = (z + noise * rng.standard_normal(z.shape)).astype(np.float32)
            a, b = _form(z, form_a), _form(w, form_b)
            with mpmath.workdps(50):
                for r in range(2):
                    p = row_probabilities(a[r].astype(np.float64), form_a)
                    q = row_probabilities(b[r].astype(np.float64), form_b)
                    if measure == "kl":
                        truths.append(
                            mpmath.fsum(x * mpmath.log(x / y) for x, y in zip(p, q, strict=True))
                        )
                        continue
                    total = mpmath.fsum(
                        x * mpmath.log(2 * x / (x + y)) + y * mpmath.log(2 * y / (x + y))
                        for x, y in zip(p, q, strict=True)
                    )
                    truths.append(total / 2)
            pad = np.full((2, 40 - classes), -np.inf if form_a != "probs" else 0.0, np.float32)
            a_rows.append(np.concatenate([a, pad], axis=-1))
            pad = np.full((2, 40 - classes), -np.inf if form_b != "probs" else 0.0, np.float32)
            b_rows.append(np.concatenate([b, pad], axis=-1))
    return np.concatenate(a_rows), np.concatenate(b_rows), tuple(truths)


def _worst_ulps(got: Any, truths: tuple[mpmath.mpf, ...]) -> float:
    values = np.asarray(got, np.float64).reshape(-1)
    eps = float(np.finfo(np.float32).eps)
    return max(
        (float(abs(mpmath.mpf(float(v)) - t) / (t * eps)) if t else (0.0 if v == 0 else np.inf))
        for v, t in zip(values, truths, strict=True)
    )


PAIRS = [
    ("logits", "log_probs"),
    ("log_probs", "logits"),
    ("probs", "logits"),
    ("logits", "probs"),
    ("probs", "log_probs"),
    ("log_probs", "probs"),
]


@pytest.mark.parametrize(("form_a", "form_b"), PAIRS)
def test_jax_float32_js_of_nearly_equal_rows_jit(no_x64: Any, form_a: str, form_b: str) -> None:
    jnp = no_x64
    a, b, truths = _rows(form_a, form_b)
    call = functools.partial(crossent.js_divergence, p_form=form_a, q_form=form_b, validate=False)
    got = jax.jit(call)(jnp.asarray(a), jnp.asarray(b))
    assert got.dtype == jnp.float32
    assert _worst_ulps(got, truths) <= ULPS


def test_jax_float32_kl_of_nearly_equal_logits_jit(no_x64: Any) -> None:
    """KL of two sides of logits: the terms :math:`q\varphi(r)` took :math:`r` from two
    rounded log-softmaxes (2.6e8 float32 ulps off at 1e-7 apart); now from the
    corrected log-ratios (measured at most 3.8)."""
    jnp = no_x64
    a, b, truths = _rows("logits", "logits", "kl")
    call = functools.partial(
        crossent.kl_divergence, p_form="logits", q_form="logits", validate=False
    )
    got = jax.jit(call)(jnp.asarray(a), jnp.asarray(b))
    assert got.dtype == jnp.float32
    assert _worst_ulps(got, truths) <= 5.0


def test_float32_error_free_transforms_under_jit(no_x64: Any) -> None:
    """TwoSum and Dekker's product in float32 are exact under ``jax.jit`` (XLA neither
    reassociates them nor contracts a product into an FMA: ``settled``), and the pair
    exponential is within :math:`2^{-44}` of :math:`e^y` (mpmath)."""
    from crossent._double_double import exp_pair32, two_product32, two_sum

    jnp = no_x64
    rng = np.random.default_rng(13)
    a = (rng.standard_normal(4096) * 2.0 ** rng.integers(-20, 20, 4096)).astype(np.float32)
    b = rng.standard_normal(4096).astype(np.float32)
    y = np.concatenate([rng.uniform(-30, 1, 200), rng.uniform(-1e-3, 1e-3, 56)])
    y = y.astype(np.float32)

    @jax.jit
    def pieces(u: Any, v: Any, w: Any) -> tuple[Any, ...]:
        return (*two_product32(u, v), *two_sum(u, v), *exp_pair32(w, xp=jnp))

    p, p_lo, s, s_lo, e_hi, e_lo = (
        np.asarray(x, np.float64) for x in pieces(jnp.asarray(a), jnp.asarray(b), jnp.asarray(y))
    )
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    assert np.array_equal(p + p_lo, a64 * b64)  # (48-bit products: exact in float64)
    assert np.array_equal(s + s_lo, a64 + b64)
    with mpmath.workdps(40):
        worst = max(
            abs((mpmath.mpf(float(h)) + mpmath.mpf(float(lo))) / mpmath.exp(float(v)) - 1)
            for h, lo, v in zip(e_hi, e_lo, y, strict=True)
        )
    assert worst <= 2.0**-44


# One pair a mechanism (each is a compile of about 2 s of CPU; the eight pairs are in
# ``benchmarks/check_jax_float32_ulps.py``): the log-ratio of probabilities and a
# log-probabilities' mass (probs/log_probs), a corrected log-ratio of two log-domain
# sides and a logits' mass (log_probs/logits), two log-probabilities' masses as
# q expm1(r) (log_probs/log_probs).
KL_PAIRS = [("probs", "log_probs"), ("log_probs", "logits"), ("log_probs", "log_probs")]


@pytest.mark.parametrize(("form_a", "form_b"), KL_PAIRS)
def test_jax_float32_kl_of_nearly_equal_rows_jit(no_x64: Any, form_a: str, form_b: str) -> None:
    """KL of every pair of forms but two sides of logits (branch jaxkl1): the plain
    float32 sum cancels (rows 1e-7 to 1e-3 apart were up to 2.25e15 float32 ulps off,
    log_probs/log_probs 1.2e3); now the Bregman terms :math:`q\\varphi(r)` and the
    masses' difference summed exactly from float32 words, a side of log-probabilities'
    mass from ``exp_triple32`` (measured at most 2.4 ulps). A KL of sides rounded to
    float32 may be negative (their masses differ): ulps of :math:`|t|`."""
    jnp = no_x64
    a, b, truths = _rows(form_a, form_b, "kl")
    call = functools.partial(crossent.kl_divergence, p_form=form_a, q_form=form_b, validate=False)
    got = np.asarray(jax.jit(call)(jnp.asarray(a), jnp.asarray(b)), np.float64).reshape(-1)
    eps = float(np.finfo(np.float32).eps)
    worst = max(
        float(abs(mpmath.mpf(float(v)) - t) / (abs(t) * eps)) if t else abs(v) / eps
        for v, t in zip(got, truths, strict=True)
    )
    assert worst <= ULPS


def test_float32_triple_exponential_under_jit(no_x64: Any) -> None:
    """``exp_triple32`` is within :math:`2^{-70}` of :math:`e^y` (mpmath) for
    :math:`y \\ge -30` (below, its lower words are subnormal: XLA's CPU flushes them;
    measured :math:`2^{-73.5}`), and its words are float32."""
    from crossent._double_double import exp_triple32

    jnp = no_x64
    rng = np.random.default_rng(71)
    y = np.concatenate([rng.uniform(-30, 1, 150), rng.uniform(-1e-3, 1e-3, 50), [0.0, -1e-30]])
    y = y.astype(np.float32)
    words = jax.jit(lambda v: exp_triple32(v, xp=jnp))(jnp.asarray(y))
    assert all(w.dtype == jnp.float32 for w in words)
    h, m, lo = (np.asarray(w, np.float64) for w in words)
    with mpmath.workdps(40):
        worst = max(
            abs(
                (mpmath.mpf(float(a)) + mpmath.mpf(float(b)) + mpmath.mpf(float(c)))
                / mpmath.exp(float(v))
                - 1
            )
            for a, b, c, v in zip(h, m, lo, y, strict=True)
        )
    assert worst <= 2.0**-70
