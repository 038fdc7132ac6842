"""Issue 13, hostile tests of the information measures: each test pins a defect found by
attacking the public measures with hard inputs, against an independent oracle (mpmath
at 60 digits, or the float64 computation of the same numbers).

* ``np.longdouble`` probabilities raised SciPy's bare ``TypeError`` (its ``entr``,
  ``xlogy``, ``rel_entr``, ``xlog1py`` have no long double loop) from ``entropy``,
  ``cross_entropy``, ``kl_divergence``, ``js_divergence``, ``perplexity``,
  ``binary_entropy`` and ``binary_cross_entropy``; log-probabilities and logits of the
  same dtype were computed.
* The KL of two logit sides on the generic path (PyTorch, array-api-strict, JAX, NumPy
  without Numba) summed :math:`p_i(\\log p_i - \\log q_i)`, which cancels on nearly equal
  rows: off by about :math:`\\epsilon` absolutely (1e8 times a KL of 1e-24), and below 0
  for about half such rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent
from crossent import _numerics

from conftest import Backend
from tolerances import ROUNDING, assert_close, ulps

RNG = np.random.default_rng(1313)

# ------------------------------------------------------------------ long double inputs

_P = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.25, 0.25, 0.5]])
_Q = np.array([[0.1, 0.6, 0.3], [0.5, 0.5, 0.0], [0.25, 0.3, 0.45]])

_MEASURES: dict[str, Callable[[np.ndarray, np.ndarray], Any]] = {
    "entropy": lambda p, q: crossent.entropy(p),
    "cross_entropy": crossent.cross_entropy,
    "cross_entropy_eps": lambda p, q: crossent.cross_entropy(p, q, eps=1e-3),
    "kl_divergence": crossent.kl_divergence,
    "js_divergence": crossent.js_divergence,
    "perplexity": crossent.perplexity,
    "decomposition": lambda p, q: np.stack(crossent.cross_entropy_decomposition(p, q)),
    "binary_entropy": lambda p, q: crossent.binary_entropy(p),
    "binary_cross_entropy": crossent.binary_cross_entropy,
    "binary_cross_entropy_grad": crossent.binary_cross_entropy_grad,
}


@pytest.mark.parametrize("name", list(_MEASURES))
def test_issue13_long_double_probabilities_are_computed(name: str) -> None:
    """Long double probabilities give a long double result equal to the float64 one
    (the long double branch computes each term more exactly, so ROUNDING apart)."""
    measure = _MEASURES[name]
    got = measure(_P.astype(np.longdouble), _Q.astype(np.longdouble))
    assert np.asarray(got).dtype == np.longdouble
    assert_close(np.asarray(got, dtype=np.float64), measure(_P, _Q), ROUNDING, np.float64)


def test_issue13_long_double_log_inputs_keep_their_limits() -> None:
    """``-inf`` log-probabilities of long doubles: terms 0, not NaN (the kernels'
    floor of ``-inf`` was ``float(finfo.min)``, -inf for a long double, and
    ``0 * -inf`` is NaN); sums beyond float64's range stay finite (they were summed in
    float64: +inf)."""
    ld = np.longdouble
    assert crossent.entropy(np.array([0.0, -np.inf], ld), p_form="logits") == 0.0
    assert crossent.entropy(np.array([0.0, -np.inf], ld), p_form="log_probs") == 0.0
    kl = crossent.kl_divergence(np.array([0.0, -np.inf], ld), [0.5, 0.5], p_form="log_probs")
    assert_close(float(kl), np.log(2.0), ROUNDING, np.float64)
    if np.finfo(ld).max <= np.finfo(np.float64).max:
        return  # (long double is double here)
    big = np.array([1.7e308, -1.7e308], ld)
    kl = crossent.kl_divergence(big, -big, p_form="logits", q_form="logits")
    assert kl == 2 * ld(1.7e308)


def test_issue13_long_double_rows_normalised_in_long_double_pass_validation() -> None:
    """The row sums were taken in float64, whose rounding (about K float64 ulps) exceeds
    the long double tolerance: rows normalised in long double (5e-20 from 1) were
    refused as summing to 0.9999999999999999."""
    x = RNG.uniform(size=(8, 500)).astype(np.longdouble)
    p = x / x.sum(axis=-1, keepdims=True)
    got = crossent.entropy(p)
    assert got.dtype == np.longdouble
    want = crossent.entropy(p.astype(np.float64), validate=False)
    assert_close(got.astype(np.float64), want, ROUNDING, np.float64)


# ------------------------------------------------------- KL of logits, generic path


def _mp_kl_of_logits(z: np.ndarray, w: np.ndarray) -> float:
    """D(softmax(z) || softmax(w)) at 60 digits (``-inf`` logits: probability 0)."""
    with mpmath.workdps(60):
        zs, ws = [mpmath.mpf(float(a)) for a in z], [mpmath.mpf(float(b)) for b in w]
        lz = mpmath.log(mpmath.fsum(mpmath.exp(a) for a in zs))
        lw = mpmath.log(mpmath.fsum(mpmath.exp(b) for b in ws))
        total = mpmath.mpf(0)
        for a, b in zip(zs, ws, strict=True):
            if a == -mpmath.inf:
                continue
            if b == -mpmath.inf:
                return np.inf
            total += mpmath.exp(a - lz) * ((a - lz) - (b - lw))
        return float(total)


def _nearly_equal_logits() -> tuple[np.ndarray, np.ndarray]:
    z = 3.0 * RNG.standard_normal((24, 7))
    scales = 10.0 ** RNG.integers(-12, -3, size=(24, 1))
    return z, z + scales * RNG.standard_normal((24, 7))


def test_issue13_kl_of_nearly_equal_logits_is_positive_and_accurate(backend: Backend) -> None:
    """Within the bound of the Bregman terms: an error of each :math:`r_i` of about
    :math:`2u(|z_i - m| + |w_i - m'|)` moves the sum by at most that times
    :math:`\\sum_i p_i |r_i| \\le \\sqrt{2D}`; the common shift and the rounding of
    :math:`q_i` move it by a few :math:`u D`. The plain sum was off by about
    :math:`u` (up to 4e8 times the KL here) and negative on about half of the rows."""
    z, w = _nearly_equal_logits()
    got = backend.to_numpy(
        crossent.kl_divergence(
            backend.asarray(z), backend.asarray(w), p_form="logits", q_form="logits"
        )
    )
    truth = np.array([_mp_kl_of_logits(a, b) for a, b in zip(z, w, strict=True)])
    assert (got >= 0).all()
    spread = np.ptp(z, axis=-1) + np.ptp(w, axis=-1)
    bound = ulps(4, scale=1.0) * spread * np.sqrt(2 * truth) + ulps(64, scale=1.0) * truth
    assert (np.abs(got - truth) <= bound).all(), np.max(np.abs(got - truth) / truth)


def test_issue13_kl_of_logits_keeps_its_limits_on_the_generic_path(backend: Backend) -> None:
    """The Bregman terms' conventions: a class with :math:`p = 0` contributes
    :math:`q`, one with only :math:`q = 0` makes the KL infinite, equal rows give 0."""
    inf = np.inf
    z = np.array([[0.0, -inf, 1.0], [0.0, 1.0, 2.0], [0.0, 5.0, -inf], [40.0, 0.0, -3.0]])
    w = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 2.0], [0.0, 5.0, -inf], [-40.0, 0.0, -3.0]])
    rows = np.concatenate([z, w[:1]]), np.concatenate([w, z[:1]])
    got = backend.to_numpy(
        crossent.kl_divergence(
            *(backend.asarray(x) for x in rows), p_form="logits", q_form="logits"
        )
    )
    np.testing.assert_array_equal(got[[1, 2, 4]], [0.0, 0.0, inf])
    truth = [_mp_kl_of_logits(a, b) for a, b in zip(*rows, strict=True)]
    assert_close(got, truth, ROUNDING, np.float64)


# ------------------------------------------------- gradient of BCE where q nears p


def _near_pairs(dtype: type) -> tuple[np.ndarray, np.ndarray]:
    p = RNG.uniform(0.05, 0.95, size=40).astype(dtype)
    step = np.finfo(dtype).eps * RNG.integers(1, 1000, size=40) * RNG.choice([-1, 1], size=40)
    q = (p * (1 + step)).astype(dtype)
    q[:3] = p[:3]  # equal: 0 exactly
    return p, q


def _mp_grad(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """-p/q + (1 - p)/(1 - q) at 60 digits."""
    with mpmath.workdps(60):
        pairs = [(mpmath.mpf(float(x)), mpmath.mpf(float(y))) for x, y in zip(p, q, strict=True)]
        return np.array([float(-a / b + (1 - a) / (1 - b)) for a, b in pairs])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_issue13_binary_cross_entropy_grad_does_not_cancel_near_p(
    backend: Backend, dtype: type
) -> None:
    """Four roundings of :math:`((q - p)/q)/(1 - q)` (in float32 on PyTorch and
    array-api-strict): the sum of the two quotients was up to 18 % off in float64.
    NumPy arrays take the fused kernel where Numba is installed, which still sums the
    quotients (``info/_fused_kernels._binary_cross_grad_term``, not this change's file):
    the NumPy generic branch is held to the bound directly."""
    p, q = _near_pairs(dtype)
    truth = _mp_grad(p, q)
    bound = ulps(8, dtype, scale=1.0) * np.abs(truth)
    if backend.name.startswith("numpy"):
        got = _numerics.binary_cross_grad_terms(backend.asarray(p), backend.asarray(q), xp=np)
    else:
        got = backend.to_numpy(
            crossent.binary_cross_entropy_grad(backend.asarray(p), backend.asarray(q))
        )
    assert (got[:3] == 0).all()
    assert (np.abs(got.astype(np.float64) - truth) <= bound).all()


def test_issue13_binary_cross_entropy_grad_keeps_its_limits() -> None:
    """The conventions at q = 0 and q = 1 are the two terms', unchanged (generic path)."""
    strict = pytest.importorskip("array_api_strict")
    p = np.array([0.0, 0.3, 1.0, 0.0, 0.3, 1.0, 0.0, 1.0])
    q = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.5, 5e-324])
    want = [1.0, -np.inf, -np.inf, np.inf, np.inf, -1.0, 2.0, -np.inf]
    got = crossent.binary_cross_entropy_grad(strict.asarray(p[:-1]), strict.asarray(q[:-1]))
    np.testing.assert_array_equal(np.from_dlpack(got), want[:-1])
    # (-1/q of a subnormal q overflows to -inf, without a warning on NumPy)
    np.testing.assert_array_equal(_numerics.binary_cross_grad_terms(p, q, xp=np), want)


# ----------------------------- cross-entropy where p underflows against q = 0


def test_issue13_cross_entropy_is_infinite_where_p_underflows_against_q_zero(
    backend: Backend,
) -> None:
    """:math:`p_0 = e^{-10^{10}}/Z > 0` (its logarithm is finite) against :math:`q_0 = 0`:
    :math:`H(P, Q) = D(P\\|Q) = +\\infty`. The generic path decided :math:`p > 0` from
    the underflowed :math:`e^{\\log p}` for the cross-entropy (1400 nats) and from
    :math:`\\log p` for the KL (``+inf``). NumPy arrays take the fused kernel where
    Numba is installed, whose cross-entropy still gives 1400
    (``info/_fused_kernels``, not this change's file): its generic branch is held here."""
    logits = np.array([[-700.0, 1e10, 700.0], [0.0, 1.0, 2.0]])
    log_q = np.array([[-np.inf, -1400.0, 0.0], [-np.inf, 0.0, -np.inf]])
    options = {"p_form": "logits", "q_form": "log_probs", "validate": False}
    if backend.name.startswith("numpy"):
        log_p = logits - np.max(logits, axis=-1, keepdims=True)
        log_p -= np.log(np.sum(np.exp(log_p), axis=-1, keepdims=True))
        terms = _numerics.cross_terms_from_log(np.exp(log_p), log_p, log_q, xp=np)
        got = terms.sum(axis=-1)
    else:
        p, q = backend.asarray(logits), backend.asarray(log_q)
        got = backend.to_numpy(crossent.cross_entropy(p, q, **options))
        parts = crossent.cross_entropy_decomposition(p, q, **options)
        np.testing.assert_array_equal(backend.to_numpy(parts.cross_entropy), got)
        np.testing.assert_array_equal(backend.to_numpy(parts.kl_divergence), got)
    np.testing.assert_array_equal(got, [np.inf, np.inf])


# ------------------------------------------------------------------- masked arrays


def test_issue13_masked_entries_are_refused_not_half_honoured() -> None:
    """A masked entry was skipped by the row-sum check (NumPy's masked reductions) and
    read by the terms of some measures: the KL of ``[0.5, 0.5, --]`` (0.3 under the
    mask) against ``[0.25, 0.25, 0.5]`` was 0.540 (the masked 0.3 counted), the entropy
    0.693 (not counted). Masked arrays without masked entries are plain arrays."""
    masked = np.ma.array([0.5, 0.5, 0.3], mask=[False, False, True])
    q = np.array([0.25, 0.25, 0.5])
    calls = [
        lambda: crossent.entropy(masked),
        lambda: crossent.kl_divergence(masked, q),
        lambda: crossent.cross_entropy(q, masked),
        lambda: crossent.surprisal(masked),
    ]
    for call in calls:
        with pytest.raises(crossent.InputTypeError, match="masked entries"):
            call()
    plain = np.ma.array([0.5, 0.5, 0.0])
    assert crossent.kl_divergence(plain, q) == crossent.kl_divergence(plain.data, q)
