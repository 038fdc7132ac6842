"""Hostile review: H(P, Q) and D(P||Q) of logits whose gaps pass the float64 range.

``q_form='logits'`` with logits near ``+-1e308``: a gap :math:`x_c - \\max x` past the
float64 range made :math:`\\log q_c` ``-inf``, and with :math:`p_c > 0` the measure
``inf``, where it is finite (:math:`p_c` times a gap of at most 3.6e308).
``cross_entropy([0.6, 0.4], [1.7e308, -1.7e308], q_form='logits')`` was ``inf`` on main
(07fd80d), its value 1.36e308, which ``softmax_cross_entropy_with_targets`` of the same
rows gave. Every test but the last two fails on main.
"""

from __future__ import annotations

import warnings
from typing import Any

import mpmath
import numpy as np
import pytest

import crossent


def _oracle(p: Any, x: Any, *, kl: bool = False) -> float:
    """H(P, softmax(x)) (or D) at 60 digits, each float taken exactly."""
    with mpmath.workdps(60):
        ps = [mpmath.mpf(float(v)) for v in p]
        xs = [mpmath.mpf(float(v)) if np.isfinite(v) else -mpmath.inf for v in x]
        top = max(xs)
        lse = top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in xs))
        total = mpmath.fsum(a * (lse - v) for a, v in zip(ps, xs, strict=True) if a > 0)
        if kl:
            total += mpmath.fsum(a * mpmath.log(a) for a in ps if a > 0)
        return float(total)


def _quiet(call: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return call()


_ROWS = [
    ([0.6, 0.4], [1.7e308, -1.7e308]),
    ([0.25, 0.25, 0.5], [-1e308, 1e308, 0.0]),
    ([1e-300, 1.0 - 1e-300], [-1.7e308, 1.7e308]),
    ([0.5, 0.0, 0.5], [1.5e308, -np.inf, -1.5e308]),
]


@pytest.mark.parametrize(("p", "x"), _ROWS)
def test_cross_entropy_of_far_logits_is_finite(p: list[float], x: list[float]) -> None:
    """Main: ``inf`` for each row."""
    expected = _oracle(p, x)
    got = _quiet(lambda: crossent.cross_entropy(np.array(p), np.array(x), q_form="logits"))
    assert got == pytest.approx(expected, rel=4e-16)
    loss = crossent.softmax_cross_entropy_with_targets(np.array(x), np.array(p))
    assert got == pytest.approx(loss, rel=4e-16)


@pytest.mark.parametrize(("p", "x"), _ROWS)
def test_kl_of_far_logits_is_finite(p: list[float], x: list[float]) -> None:
    expected = _oracle(p, x, kl=True)
    got = _quiet(lambda: crossent.kl_divergence(np.array(p), np.array(x), q_form="logits"))
    assert got == pytest.approx(expected, rel=4e-16)


def test_p_as_logits_or_log_probs_and_a_base() -> None:
    x = np.array([1.7e308, -1.7e308])
    p_logits = np.array([0.0, -0.4])
    p = np.exp(p_logits - np.logaddexp(0.0, -0.4))
    expected = _oracle(p, x, kl=True)
    got = crossent.kl_divergence(p_logits, x, p_form="logits", q_form="logits")
    assert got == pytest.approx(expected, rel=1e-15)
    got = crossent.cross_entropy(np.log([0.6, 0.4]), x, p_form="log_probs", q_form="logits")
    assert got == pytest.approx(_oracle([0.6, 0.4], x), rel=1e-15)
    in_decades = crossent.cross_entropy(np.array([0.6, 0.4]), x, q_form="logits", base=10)
    assert in_decades == pytest.approx(_oracle([0.6, 0.4], x) / np.log(10), rel=1e-15)
    in_bits = _quiet(
        lambda: crossent.cross_entropy(np.array([0.6, 0.4]), x, q_form="logits", base=2)
    )
    assert in_bits == np.inf  # 1.96e308 bits: past the range


def test_batches_axis_and_decomposition() -> None:
    """Only the far rows change; the class axis first; the decomposition's fields."""
    p = np.array([[0.6, 0.4], [0.6, 0.4], [0.3, 0.7]])
    x = np.array([[1.7e308, -1.7e308], [0.0, 1.0], [1e308, -1e308]])
    got = _quiet(lambda: crossent.cross_entropy(p.T, x.T, axis=0, q_form="logits"))
    expected = [_oracle(a, b) for a, b in zip(p, x, strict=True)]
    np.testing.assert_allclose(got, expected, rtol=4e-16)
    assert got[1] == crossent.cross_entropy(p[1], x[1], q_form="logits")
    parts = _quiet(lambda: crossent.cross_entropy_decomposition(p, x, q_form="logits"))
    np.testing.assert_allclose(parts.cross_entropy, expected, rtol=4e-16)
    kl = [_oracle(a, b, kl=True) for a, b in zip(p, x, strict=True)]
    np.testing.assert_allclose(parts.kl_divergence, kl, rtol=4e-16)
    np.testing.assert_array_equal(parts.entropy, crossent.entropy(p))
    broadcast = crossent.cross_entropy(np.array([0.6, 0.4]), x, q_form="logits")
    np.testing.assert_allclose(broadcast, [_oracle([0.6, 0.4], b) for b in x], rtol=4e-16)


def test_truly_infinite_rows_stay_infinite() -> None:
    """A ``-inf`` logit under :math:`p > 0`, and a value past the range (guards)."""
    p = np.array([0.6, 0.4])
    assert crossent.cross_entropy(p, np.array([0.0, -np.inf]), q_form="logits") == np.inf
    assert crossent.kl_divergence(p, np.array([0.0, -np.inf]), q_form="logits") == np.inf
    one_hot = np.array([0.0, 1.0])
    assert crossent.cross_entropy(one_hot, np.array([1.7e308, -1.7e308]), q_form="logits") == (
        np.inf
    )


def test_ordinary_logits_keep_their_bits() -> None:
    """The check costs one look at the result and changes no finite row (a guard)."""
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(7), size=40)
    x = rng.normal(size=(40, 7)) * 30
    nats = crossent.cross_entropy(p, x, q_form="logits")
    assert np.all(np.isfinite(nats))
    for row in range(3):
        assert crossent.cross_entropy(p[row], x[row], q_form="logits") == nats[row]
