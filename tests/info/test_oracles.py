"""Every measure against an independent oracle: mpmath at 50 digits, and SciPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
from hypothesis import given
from hypothesis import strategies as st

import crossent

import oracles
from conftest import Backend
from strategies import distribution_pairs, distributions
from tolerances import rtol

# Hand-picked rows that stress the limits: zeros on either side, tiny masses,
# near-equal distributions, and a one-hot row.
CASES = [
    ([0.7, 0.2, 0.1], [0.1, 0.2, 0.7]),
    ([1.0, 0.0, 0.0], [0.7, 0.2, 0.1]),
    ([0.5, 0.5, 0.0], [0.25, 0.25, 0.5]),
    ([0.0, 0.5, 0.5], [0.0, 0.5, 0.5]),
    ([1e-300, 1 - 1e-300], [0.5, 0.5]),
    ([0.5, 0.5], [1e-300, 1.0]),
    ([0.25, 0.25, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25]),
    ([0.5 + 1e-9, 0.5 - 1e-9], [0.5, 0.5]),
    ([0.3, 0.3, 0.4], [0.3 + 1e-12, 0.3, 0.4 - 1e-12]),
]


@pytest.mark.parametrize(("p", "q"), CASES)
def test_pair_measures_match_mpmath(p: list[float], q: list[float]) -> None:
    assert crossent.entropy(p) == pytest.approx(oracles.entropy(p), rel=1e-14, abs=1e-300)
    assert crossent.cross_entropy(p, q) == pytest.approx(
        oracles.cross_entropy(p, q), rel=1e-14, abs=0
    )
    assert crossent.kl_divergence(p, q) == pytest.approx(
        oracles.kl_divergence(p, q), rel=1e-6, abs=4e-16
    )
    assert crossent.js_divergence(p, q) == pytest.approx(
        oracles.js_divergence(p, q), rel=1e-12, abs=1e-300
    )


def test_js_keeps_relative_accuracy_when_distributions_nearly_agree() -> None:
    # JS here is about 2.5e-19: the textbook p log(p/m) + q log(q/m) returns rounding
    # noise of order 1e-17, with the wrong sign half the time.
    p, q = [0.5 + 1e-9, 0.5 - 1e-9], [0.5, 0.5]
    truth = oracles.js_divergence(p, q)
    assert truth < 1e-18
    assert crossent.js_divergence(p, q) == pytest.approx(truth, rel=1e-6, abs=0)


def test_kl_with_subnormal_q_is_finite_although_p_over_q_overflows(backend: Backend) -> None:
    # 0.5 / 1e-310 overflows float64; 0.5 * log(0.5 / 1e-310) = 356.2 does not.
    if backend.name == "jax":
        pytest.skip("XLA flushes subnormals to zero on CPU: 1e-310 is 0 there, and +inf right")
    p, q = np.array([0.5, 0.5]), np.array([1.0, 1e-310])
    truth = oracles.kl_divergence(p, q)
    assert math.isfinite(truth)
    got = crossent.kl_divergence(backend.asarray(p), backend.asarray(q))
    assert float(backend.to_numpy(got)) == pytest.approx(truth, rel=1e-14)


@given(distribution_pairs())
def test_random_pairs_match_mpmath(pair: tuple[np.ndarray, np.ndarray]) -> None:
    p, q = pair
    h_true = oracles.entropy(p)
    ce_true = oracles.cross_entropy(p, q)
    kl_true = oracles.kl_divergence(p, q)
    js_true = oracles.js_divergence(p, q)
    # Absolute slack for the sums with cancellation (KL): a few ulps of the terms' scale.
    scale = 1.0 + ce_true if math.isfinite(ce_true) else 1.0
    assert crossent.entropy(p) == pytest.approx(h_true, rel=rtol(np.float64), abs=1e-300)
    assert crossent.cross_entropy(p, q) == pytest.approx(ce_true, rel=rtol(np.float64), abs=0)
    assert crossent.kl_divergence(p, q) == pytest.approx(
        kl_true, rel=rtol(np.float64), abs=8 * np.finfo(float).eps * scale
    )
    assert crossent.js_divergence(p, q) == pytest.approx(js_true, rel=rtol(np.float64), abs=1e-300)


@given(distributions(min_classes=2), st.floats(-30, 30), st.integers(0, 2**32 - 1))
def test_logit_forms_match_mpmath_softmax(p: np.ndarray, scale: float, seed: int) -> None:
    logits = np.random.default_rng(seed).normal(size=p.shape) * scale
    q = oracles.softmax(logits)
    expected = oracles.cross_entropy(p, q)
    got = crossent.cross_entropy(p, logits, q_form="logits")
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-13)
    assert crossent.entropy(logits, p_form="logits") == pytest.approx(
        oracles.entropy(q), rel=1e-11, abs=1e-13
    )


def test_matches_scipy_on_normalised_random_rows() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(50), size=200)
    q = rng.dirichlet(np.ones(50), size=200)
    np.testing.assert_allclose(crossent.entropy(p), scipy.stats.entropy(p, axis=1), rtol=1e-13)
    np.testing.assert_allclose(
        crossent.kl_divergence(p, q), scipy.stats.entropy(p, q, axis=1), rtol=1e-12
    )
    np.testing.assert_allclose(
        crossent.js_divergence(p, q, base=2),
        scipy.spatial.distance.jensenshannon(p, q, axis=1, base=2) ** 2,
        rtol=1e-10,
    )
    np.testing.assert_allclose(crossent.surprisal(p), -np.log(p), rtol=1e-15)


@given(
    st.floats(0, 1, allow_subnormal=True),
    st.floats(0, 1, allow_subnormal=True),
)
def test_binary_cross_entropy_matches_mpmath(p: float, q: float) -> None:
    expected = oracles.binary_cross_entropy(p, q)
    got = crossent.binary_cross_entropy(p, q)
    if math.isinf(expected):
        assert got == math.inf
    else:
        assert got == pytest.approx(expected, rel=1e-13, abs=1e-300)


@given(st.floats(0, 1, allow_subnormal=True))
def test_binary_entropy_matches_mpmath(p: float) -> None:
    # h(p) = BCE(p, p); the oracle evaluates log(1 - p) exactly, as log1p does.
    exact = oracles.binary_cross_entropy(p, p)
    assert crossent.binary_entropy(p) == pytest.approx(exact, rel=1e-13, abs=1e-300)


@given(st.floats(1e-3, 1 - 1e-3))
def test_binary_entropy_equals_entropy_of_two_classes(p: float) -> None:
    # Away from 0 and 1, rounding 1 - p perturbs h(p) by ~1e-16 relative; near 0 the
    # two-class form loses the -(1 - p) log(1 - p) ~ p term once 1 - p rounds to 1.
    assert crossent.binary_entropy(p) == pytest.approx(crossent.entropy([p, 1 - p]), rel=1e-12)


@given(st.floats(0, 1, allow_subnormal=True))
def test_surprisal_matches_mpmath(p: float) -> None:
    expected = math.inf if p == 0 else float(-oracles.mpmath.log(oracles.mpmath.mpf(p)))
    assert crossent.surprisal(p) == pytest.approx(expected, rel=1e-15, abs=0)
