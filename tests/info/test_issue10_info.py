"""Regression tests for issue 10's items on the information measures and shared input checks."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import crossent

from conftest import Backend

# ----------------------------------------------------------------- item 8: KL near P = Q


def _exact_near_pairs(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of 5 dyadic probabilities k / 2^52 summing to exactly 1, and the same with each
    numerator moved by at most 8 (again summing to exactly 1): nearly equal, exactly
    normalised, so the true KL is positive and computable exactly."""
    rng = np.random.default_rng(seed)
    scale = 2**52
    k = rng.multinomial(scale - 5 * 2**40, np.ones(5) / 5, size=rows) + 2**40
    k[:, -1] = scale - k[:, :-1].sum(axis=1)
    d = rng.integers(-8, 9, size=(rows, 5))
    d[:, -1] = -d[:, :-1].sum(axis=1)
    return k / float(scale), (k + d) / float(scale)


def _kl_mpmath(p: np.ndarray, q: np.ndarray) -> float:
    with mpmath.workdps(60):
        return float(
            sum(
                mpmath.mpf(a) * mpmath.log(mpmath.mpf(a) / mpmath.mpf(b))
                for a, b in zip(p, q, strict=True)
            )
        )


@pytest.mark.parametrize(
    "measure",
    [
        crossent.kl_divergence,
        lambda p, q: crossent.cross_entropy_decomposition(p, q).kl_divergence,
    ],
)
def test_issue10_item8_kl_of_nearly_equal_distributions_is_positive_and_accurate(
    backend: Backend, measure: object
) -> None:
    p, q = _exact_near_pairs(60, seed=1)
    got = backend.to_numpy(measure(backend.asarray(p), backend.asarray(q)))  # type: ignore[operator]
    truth = np.array([_kl_mpmath(a, b) for a, b in zip(p, q, strict=True)])
    assert np.all(truth > 0)
    assert np.all(got > 0), got[got <= 0]
    # The sum of terms of about 1e-15 that cancel to about 1e-29: the summation alone
    # costs a few per cent; the old torch path was off by factors of 10^7.
    np.testing.assert_allclose(got, truth, rtol=0.25)


def test_issue10_item8_kl_terms_keep_relative_accuracy_near_one(backend: Backend) -> None:
    # One class with validate=False isolates a single term p log(p / q) with p / q near 1.
    rng = np.random.default_rng(2)
    p = rng.uniform(0.01, 1.0, size=(200, 1))
    q = p * (1 + rng.uniform(-1e-10, 1e-10, size=(200, 1)))
    got = backend.to_numpy(
        crossent.kl_divergence(backend.asarray(p), backend.asarray(q), validate=False)
    )
    truth = np.array([_kl_mpmath(a, b) for a, b in zip(p, q, strict=True)])
    np.testing.assert_allclose(got, truth, rtol=1e-14, atol=0)
