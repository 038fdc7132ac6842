"""Identities and inequalities of the measures, as properties over random distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import crossent

from strategies import distribution_pairs, distributions
from tolerances import CLOSED_FORM, ROUNDING, SUM, ulps

EPS = np.finfo(np.float64).eps


def _slack(*values: float) -> float:
    """A few ulps of the magnitudes involved (sums of up to 12 terms)."""
    return 16 * EPS * (1 + sum(abs(v) for v in values if math.isfinite(v)))


@given(distribution_pairs())
def test_cross_entropy_is_entropy_plus_kl(pair: tuple[np.ndarray, np.ndarray]) -> None:
    p, q = pair
    d = crossent.cross_entropy_decomposition(p, q)
    if math.isinf(d.cross_entropy):
        assert math.isinf(d.kl_divergence)
        return
    assert d.cross_entropy == pytest.approx(
        d.entropy + d.kl_divergence, abs=_slack(d.cross_entropy, d.entropy)
    )
    assert d.entropy == crossent.entropy(p)
    assert d.cross_entropy == crossent.cross_entropy(p, q)
    assert d.kl_divergence == crossent.kl_divergence(p, q)


@given(distribution_pairs())
def test_gibbs_inequality(pair: tuple[np.ndarray, np.ndarray]) -> None:
    p, q = pair
    # Exactly-normalised P and Q have KL >= 0; these rows sum to 1 within an ulp, so
    # the true KL of the given floats can be negative by about that much.
    assert crossent.kl_divergence(p, q) >= -4 * EPS
    assert crossent.cross_entropy(p, q) >= crossent.entropy(p) - _slack(crossent.entropy(p))


@given(distributions())
def test_kl_of_a_distribution_with_itself_is_zero(p: np.ndarray) -> None:
    assert crossent.kl_divergence(p, p) == 0.0
    assert crossent.js_divergence(p, p) == 0.0


@given(distributions())
def test_entropy_is_between_zero_and_log_k(p: np.ndarray) -> None:
    h = crossent.entropy(p)
    assert 0.0 <= h <= math.log(p.size) + _slack(h)
    assert 1.0 - _slack(1) <= crossent.perplexity(p) <= p.size * (1 + _slack(1))


@pytest.mark.parametrize("k", [1, 2, 3, 10, 1000])
def test_uniform_distribution_has_entropy_log_k(k: int) -> None:
    assert crossent.entropy(np.full(k, 1 / k)) == pytest.approx(math.log(k), **ROUNDING.rel_abs())
    assert crossent.perplexity(np.full(k, 1 / k)) == pytest.approx(k, **SUM.rel_abs())


@given(distribution_pairs())
def test_js_is_symmetric_and_bounded_by_log_2(pair: tuple[np.ndarray, np.ndarray]) -> None:
    p, q = pair
    js = crossent.js_divergence(p, q)
    assert js == crossent.js_divergence(q, p)  # exactly: the kernel is symmetric
    assert 0.0 <= js <= math.log(2) * (1 + 4 * EPS)


@given(distribution_pairs(), st.sampled_from([2, 10, math.e, 0.5, 7.3]))
def test_base_is_a_change_of_unit(pair: tuple[np.ndarray, np.ndarray], base: float) -> None:
    p, q = pair
    for f in (crossent.cross_entropy, crossent.kl_divergence, crossent.js_divergence):
        nats = f(p, q)
        if math.isinf(nats):
            assert f(p, q, base=base) == math.copysign(math.inf, nats / math.log(base))
        else:
            assert f(p, q, base=base) == pytest.approx(nats / math.log(base), rel=ulps(5), abs=0)


@given(distribution_pairs())
def test_log_prob_forms_equal_prob_forms(pair: tuple[np.ndarray, np.ndarray]) -> None:
    p, q = pair
    with np.errstate(divide="ignore"):
        log_p, log_q = np.log(p), np.log(q)
    for f in (crossent.cross_entropy, crossent.kl_divergence, crossent.js_divergence):
        expected = f(p, q)
        got = f(log_p, log_q, p_form="log_probs", q_form="log_probs")
        mixed = f(p, log_q, q_form="log_probs")
        for value in (got, mixed):
            if math.isinf(expected):
                assert value == expected
            else:
                # log p - log q against log(p / q): absolute error ~ eps * |log p|
                assert value == pytest.approx(expected, **CLOSED_FORM.rel_abs())
    assert crossent.entropy(log_p, p_form="log_probs") == pytest.approx(
        crossent.entropy(p), **SUM.rel_abs()
    )


@given(
    st.lists(st.floats(-50, 50), min_size=2, max_size=10),
    st.floats(-1e4, 1e4),
)
def test_softmax_shift_invariance(logits: list[float], shift: float) -> None:
    z = np.array(logits)
    # rounding z + shift moves each logit by up to ulp(shift) / 2 (see tests/tolerances.py)
    slack = ulps(16, scale=1 + abs(shift) + 50)
    assert crossent.entropy(z + shift, p_form="logits") == pytest.approx(
        crossent.entropy(z, p_form="logits"), rel=0, abs=slack
    )
    target = np.eye(z.size)[0]
    assert crossent.cross_entropy(target, z + shift, q_form="logits") == pytest.approx(
        crossent.cross_entropy(target, z, q_form="logits"), rel=0, abs=slack
    )


def test_one_hot_cross_entropy_is_surprisal_of_the_true_class() -> None:
    q = np.array([[0.7, 0.2, 0.1], [0.05, 0.9, 0.05]])
    one_hot = np.eye(3)[[0, 2]]
    np.testing.assert_array_equal(
        crossent.cross_entropy(one_hot, q), crossent.surprisal(q[[0, 1], [0, 2]])
    )
    np.testing.assert_array_equal(
        crossent.kl_divergence(one_hot, q), crossent.cross_entropy(one_hot, q)
    )


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
def test_axis_equals_moveaxis(axis: int) -> None:
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(5), size=(3, 4))
    q = rng.dirichlet(np.ones(5), size=(3, 4))
    p_moved, q_moved = np.moveaxis(p, -1, axis), np.moveaxis(q, -1, axis)
    for f in (crossent.cross_entropy, crossent.kl_divergence, crossent.js_divergence):
        np.testing.assert_array_equal(f(p_moved, q_moved, axis=axis), f(p, q))
    np.testing.assert_array_equal(crossent.entropy(p_moved, axis=axis), crossent.entropy(p))


def test_batch_shapes_broadcast_but_classes_do_not() -> None:
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.ones(4), size=6)
    q = rng.dirichlet(np.ones(4))
    np.testing.assert_array_equal(
        crossent.cross_entropy(p, q), [crossent.cross_entropy(row, q) for row in p]
    )
    with pytest.raises(crossent.InputError, match="same number of classes"):
        crossent.cross_entropy(p, q[:, None])


def test_perplexity_of_model_is_exp_of_cross_entropy() -> None:
    p, q = [0.2, 0.8], [0.5, 0.5]
    assert crossent.perplexity(p, q) == pytest.approx(
        math.exp(crossent.cross_entropy(p, q)), **CLOSED_FORM.rel_abs()
    )
    assert crossent.perplexity([1, 0], [0, 1]) == math.inf


def test_empty_batch_gives_empty_result() -> None:
    assert crossent.entropy(np.zeros((0, 3))).shape == (0,)
    assert crossent.kl_divergence(np.zeros((0, 3)), np.zeros((0, 3))).shape == (0,)
