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
from tolerances import CLOSED_FORM, ROUNDING, SUM, ulps

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


def _terms(p: list[float], q: list[float]) -> float:
    """sum |p log(p / q)|: the scale of the KL's rounding errors when its terms cancel."""
    return float(np.sum(np.abs(scipy.special.rel_entr(p, q))))


@pytest.mark.parametrize(("p", "q"), CASES)
def test_pair_measures_match_mpmath(p: list[float], q: list[float]) -> None:
    assert crossent.entropy(p) == pytest.approx(oracles.entropy(p), **ROUNDING.rel_abs())
    assert crossent.cross_entropy(p, q) == pytest.approx(
        oracles.cross_entropy(p, q), **ROUNDING.rel_abs()
    )
    assert crossent.kl_divergence(p, q) == pytest.approx(
        oracles.kl_divergence(p, q), rel=ROUNDING.rtol, abs=ulps(16, scale=_terms(p, q))
    )
    assert crossent.js_divergence(p, q) == pytest.approx(
        oracles.js_divergence(p, q), **CLOSED_FORM.rel_abs()
    )


def test_js_keeps_relative_accuracy_when_distributions_nearly_agree() -> None:
    # JS here is about 2.5e-19: the textbook p log(p/m) + q log(q/m) returns rounding
    # noise of order 1e-17, with the wrong sign half the time.
    p, q = [0.5 + 1e-9, 0.5 - 1e-9], [0.5, 0.5]
    truth = oracles.js_divergence(p, q)
    assert truth < 1e-18
    assert crossent.js_divergence(p, q) == pytest.approx(truth, **ROUNDING.rel_abs())


def test_kl_with_subnormal_q_is_finite_although_p_over_q_overflows(backend: Backend) -> None:
    # 0.5 / 1e-310 overflows float64; 0.5 * log(0.5 / 1e-310) = 356.2 does not.
    if backend.name == "jax":
        pytest.skip("XLA flushes subnormals to zero on CPU: 1e-310 is 0 there, and +inf right")
    p, q = np.array([0.5, 0.5]), np.array([1.0, 1e-310])
    truth = oracles.kl_divergence(p, q)
    assert math.isfinite(truth)
    got = crossent.kl_divergence(backend.asarray(p), backend.asarray(q))
    assert float(backend.to_numpy(got)) == pytest.approx(truth, **ROUNDING.rel_abs())


@given(distribution_pairs())
def test_random_pairs_match_mpmath(pair: tuple[np.ndarray, np.ndarray]) -> None:
    p, q = pair
    h_true = oracles.entropy(p)
    ce_true = oracles.cross_entropy(p, q)
    kl_true = oracles.kl_divergence(p, q)
    js_true = oracles.js_divergence(p, q)
    # Absolute slack for the sums with cancellation (KL): a few ulps of the terms' scale.
    scale = 1.0 + ce_true if math.isfinite(ce_true) else 1.0
    assert crossent.entropy(p) == pytest.approx(h_true, **CLOSED_FORM.rel_abs())
    assert crossent.cross_entropy(p, q) == pytest.approx(ce_true, **CLOSED_FORM.rel_abs())
    assert crossent.kl_divergence(p, q) == pytest.approx(
        kl_true, rel=CLOSED_FORM.rtol, abs=ulps(8, scale=scale)
    )
    assert crossent.js_divergence(p, q) == pytest.approx(js_true, **CLOSED_FORM.rel_abs())


@given(distributions(min_classes=2), st.floats(-30, 30), st.integers(0, 2**32 - 1))
def test_logit_forms_match_mpmath_softmax(p: np.ndarray, scale: float, seed: int) -> None:
    logits = np.random.default_rng(seed).normal(size=p.shape) * scale
    q = oracles.softmax(logits)
    expected = oracles.cross_entropy(p, q)
    got = crossent.cross_entropy(p, logits, q_form="logits")
    assert got == pytest.approx(expected, **CLOSED_FORM.rel_abs())
    assert crossent.entropy(logits, p_form="logits") == pytest.approx(
        oracles.entropy(q), **CLOSED_FORM.rel_abs()
    )


def test_matches_scipy_on_normalised_random_rows() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(50), size=200)
    q = rng.dirichlet(np.ones(50), size=200)
    np.testing.assert_allclose(crossent.entropy(p), scipy.stats.entropy(p, axis=1), rtol=SUM.rtol)
    np.testing.assert_allclose(
        crossent.kl_divergence(p, q), scipy.stats.entropy(p, q, axis=1), rtol=CLOSED_FORM.rtol
    )
    np.testing.assert_allclose(
        crossent.js_divergence(p, q, base=2),
        scipy.spatial.distance.jensenshannon(p, q, axis=1, base=2) ** 2,
        rtol=CLOSED_FORM.rtol,
    )
    np.testing.assert_allclose(crossent.surprisal(p), -np.log(p), rtol=ulps(5))


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
        assert got == pytest.approx(expected, **SUM.rel_abs())


@given(st.floats(0, 1, allow_subnormal=True))
def test_binary_entropy_matches_mpmath(p: float) -> None:
    # h(p) = BCE(p, p); the oracle evaluates log(1 - p) exactly, as log1p does.
    exact = oracles.binary_cross_entropy(p, p)
    assert crossent.binary_entropy(p) == pytest.approx(exact, **SUM.rel_abs())


@given(st.floats(1e-3, 1 - 1e-3))
def test_binary_entropy_equals_entropy_of_two_classes(p: float) -> None:
    # Away from 0 and 1, rounding 1 - p perturbs h(p) by ~1e-16 relative; near 0 the
    # two-class form loses the -(1 - p) log(1 - p) ~ p term once 1 - p rounds to 1.
    assert crossent.binary_entropy(p) == pytest.approx(
        crossent.entropy([p, 1 - p]), **CLOSED_FORM.rel_abs()
    )


@given(st.floats(0, 1, allow_subnormal=True))
def test_surprisal_matches_mpmath(p: float) -> None:
    with oracles.mpmath.workdps(oracles.DIGITS):
        expected = math.inf if p == 0 else float(-oracles.mpmath.log(oracles.mpmath.mpf(p)))
    assert crossent.surprisal(p) == pytest.approx(expected, rel=ulps(5), abs=0)
