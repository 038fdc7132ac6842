"""The value-and-gradient entry points that the public functions and crossent.torch share."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

import crossent
from crossent.losses._softmax import (
    prepare_softmax_labels,
    prepare_softmax_targets,
    softmax_gradient,
    softmax_label_gradient,
)

from tolerances import atol, rtol

RNG = np.random.default_rng(7)
LOGITS = (RNG.normal(size=(12, 9)) * 3).astype(np.float32)
LABELS = RNG.integers(0, 9, size=12)
LABELS[[2, 5]] = -100
WEIGHT = RNG.uniform(0.2, 2.0, size=9).astype(np.float32)
OPTIONS = {
    "ignore_index": -100,
    "weight": WEIGHT,
    "label_smoothing": 0.1,
    "temperature": 1.3,
    "z_loss": 1e-3,
}


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_entry_point_matches_the_public_functions(fused: bool, reduction: str) -> None:
    problem = prepare_softmax_labels(LOGITS, LABELS, reduction=reduction, fused=fused, **OPTIONS)
    assert (problem.fast_logits is not None) == fused  # Numba's kernels or their NumPy twins
    loss = crossent.softmax_cross_entropy(LOGITS, LABELS, reduction=reduction, **OPTIONS)
    grad = crossent.softmax_cross_entropy_grad(LOGITS, LABELS, reduction=reduction, **OPTIONS)
    np.testing.assert_allclose(problem.loss(), loss, rtol=rtol(np.float32), atol=atol(np.float32))
    np.testing.assert_allclose(
        softmax_label_gradient(problem), grad, rtol=rtol(np.float32), atol=atol(np.float32)
    )
    expected_lse = logsumexp(LOGITS.astype(np.float64) / 1.3, axis=-1)
    np.testing.assert_allclose(problem.row_lse, expected_lse, rtol=1e-6)


@pytest.mark.parametrize("fused", [True, False])
def test_upstream_scales_the_gradient(fused: bool) -> None:
    problem = prepare_softmax_labels(LOGITS, LABELS, fused=fused, **OPTIONS)
    base = softmax_gradient(problem)
    np.testing.assert_allclose(softmax_gradient(problem, upstream=2.5), 2.5 * base, rtol=1e-6)
    np.testing.assert_allclose(
        softmax_gradient(problem, upstream=np.float32(-0.5)), -0.5 * base, rtol=1e-6
    )


@pytest.mark.parametrize("fused", [True, False])
def test_per_row_upstream_is_the_gradient_of_the_weighted_sum(fused: bool) -> None:
    u = RNG.normal(size=12)
    problem = prepare_softmax_labels(LOGITS, LABELS, reduction="none", fused=fused, **OPTIONS)
    got = softmax_gradient(problem, upstream=u)
    rows = crossent.softmax_cross_entropy_grad(LOGITS, LABELS, reduction="none", **OPTIONS)
    np.testing.assert_allclose(got, u[:, None] * rows, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("fused", [True, False])
def test_gradient_into_out(fused: bool) -> None:
    problem = prepare_softmax_labels(LOGITS, LABELS, fused=fused, **OPTIONS)
    out = np.empty_like(LOGITS)
    assert softmax_gradient(problem, out=out) is out
    np.testing.assert_array_equal(out, softmax_gradient(problem))


def test_targets_entry_point() -> None:
    targets = RNG.dirichlet(np.ones(9), size=12)
    z = LOGITS.astype(np.float64)
    options = {"weight": WEIGHT.astype(np.float64), "label_smoothing": 0.2, "z_loss": 1e-2}
    problem = prepare_softmax_targets(z, targets, **options)
    np.testing.assert_allclose(
        problem.loss(), crossent.softmax_cross_entropy_with_targets(z, targets, **options)
    )
    np.testing.assert_allclose(
        softmax_gradient(problem, upstream=3.0),
        3.0 * crossent.softmax_cross_entropy_with_targets_grad(z, targets, **options),
    )
