"""Third hostile pass: VectorScaling detects separation and pins a constant column's scale.

Oracles: the exact mean NLL of ``softmax(w z + b)`` written here with
:func:`scipy.special.logsumexp` in float64 and minimised by :func:`scipy.optimize.minimize`;
separation decided by the dual of the library's test (Stiemke: the data overlap iff
some :math:`\\lambda \\ge 1` has :math:`M^T \\lambda = 0`), solved by
:func:`scipy.optimize.linprog` on the dense margin matrix.

On main (4d024a0) every test here fails: ``VectorScaling`` had no ``separated_``,
reported ``converged_`` True on separated data, and left a constant column's scale
where L-BFGS stopped.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, special

import crossent


def nll(scores: np.ndarray, labels: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> float:
    """The exact mean NLL of vector scaling, in float64."""
    u = scores * scale + bias
    rows = np.arange(scores.shape[0])
    return float(np.mean(special.logsumexp(u, axis=1) - u[rows, labels]))


def nll_and_gradient(
    theta: np.ndarray, scores: np.ndarray, labels: np.ndarray, free_scale: np.ndarray
) -> tuple[float, np.ndarray]:
    """NLL and gradient in (the free scales, every bias); the other scales are 1."""
    n, classes = scores.shape
    scale = np.ones(classes)
    scale[free_scale] = theta[: free_scale.sum()]
    bias = theta[free_scale.sum() :]
    u = scores * scale + bias
    probs = special.softmax(u, axis=1)
    residual = probs.copy()
    residual[np.arange(n), labels] -= 1.0
    grad_scale = (residual * scores).sum(axis=0)[free_scale] / n
    # the biases' gauge: the mean of the biases held at 0 by a penalty
    grad_bias = residual.sum(axis=0) / n + bias.sum() / classes
    value = nll(scores, labels, scale, bias) + bias.sum() ** 2 / (2 * classes)
    return value, np.concatenate([grad_scale, grad_bias])


def scipy_fit(scores: np.ndarray, labels: np.ndarray, free_scale: np.ndarray) -> np.ndarray:
    classes = scores.shape[1]
    start = np.concatenate([np.ones(free_scale.sum()), np.zeros(classes)])
    result = optimize.minimize(
        nll_and_gradient,
        start,
        args=(scores, labels, free_scale),
        jac=True,
        method="BFGS",
        options={"gtol": 1e-13, "maxiter": 10_000},
    )
    scale = np.ones(classes)
    scale[free_scale] = result.x[: free_scale.sum()]
    return np.concatenate([scale, result.x[free_scale.sum() :]])


def overlap_by_dual(scores: np.ndarray, labels: np.ndarray) -> bool:
    """Some lambda >= 1 with M^T lambda = 0 (M: the margins' matrix, dense)."""
    n, classes = scores.shape
    rows = []
    for i in range(n):
        y = labels[i]
        for k in range(classes):
            if k == y:
                continue
            row = np.zeros(2 * classes)
            row[y] += scores[i, y]
            row[classes + y] += 1.0
            row[k] -= scores[i, k]
            row[classes + k] -= 1.0
            rows.append(row)
    matrix = np.array(rows)
    result = optimize.linprog(
        np.zeros(matrix.shape[0]),
        A_eq=matrix.T,
        b_eq=np.zeros(2 * classes),
        bounds=[(1.0, None)] * matrix.shape[0],
        method="highs",
    )
    assert result.status in (0, 2)  # optimal or infeasible
    return bool(result.status == 0)


def noisy_labels(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    probs = special.softmax(scores, axis=1)
    return np.array([rng.choice(scores.shape[1], p=row) for row in probs])


def test_every_label_top_ranked_is_separated() -> None:
    """All-correct predictions: the scales grow without end (the NLL along
    (w, b) + t (1, 0) keeps falling), so no fit exists."""
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(200, 4)) * 2
    labels = scores.argmax(axis=1)
    fitted = crossent.VectorScaling().fit(scores, labels)
    assert fitted.separated_
    assert not fitted.converged_
    up = np.ones(4)
    assert nll(scores, labels, fitted.scale_ + up, fitted.bias_) < nll(
        scores, labels, fitted.scale_, fitted.bias_
    )


def test_ties_at_the_top_are_quasi_separated() -> None:
    """Integer logits with ties, each label one of its row's maxima: quasi-complete
    separation (margins >= 0, some 0): no finite fit either."""
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 3, size=(120, 3)).astype(np.float64)
    tops = scores == scores.max(axis=1, keepdims=True)
    labels = np.array([rng.choice(np.flatnonzero(row)) for row in tops])
    assert np.any(tops.sum(axis=1) > 1)
    assert not overlap_by_dual(scores, labels)
    fitted = crossent.VectorScaling().fit(scores, labels)
    assert fitted.separated_
    assert not fitted.converged_


def test_every_label_ranked_last_is_separated() -> None:
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(150, 3))
    labels = scores.argmin(axis=1)
    fitted = crossent.VectorScaling().fit(scores, labels)
    assert fitted.separated_
    assert not fitted.converged_
    down = -np.ones(3)
    assert nll(scores, labels, fitted.scale_ + down, fitted.bias_) < nll(
        scores, labels, fitted.scale_, fitted.bias_
    )


def test_separated_along_a_direction_no_ranking_shows() -> None:
    """Labels that a vector scaling with mixed-sign scales and biases ranks first:
    neither the argmax nor the argmin direction shows it (the linear program does)."""
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(300, 3))
    scale, bias = np.array([2.0, -1.0, 0.5]), np.array([0.3, 0.0, -0.2])
    labels = (scores * scale + bias).argmax(axis=1)
    assert set(labels.tolist()) == {0, 1, 2}
    assert not np.all(labels == scores.argmax(axis=1))
    assert not np.all(labels == scores.argmin(axis=1))
    assert not overlap_by_dual(scores, labels)
    fitted = crossent.VectorScaling().fit(scores, labels)
    assert fitted.separated_
    assert not fitted.converged_
    assert nll(scores, labels, fitted.scale_ + scale, fitted.bias_ + bias) < nll(
        scores, labels, fitted.scale_, fitted.bias_
    )


def test_overlapping_data_fit_is_scipys() -> None:
    rng = np.random.default_rng(4)
    scores = rng.normal(size=(400, 3)) * 2 + [0.5, 0.0, -0.5]
    labels = noisy_labels(scores, rng)
    fitted = crossent.VectorScaling().fit(scores, labels)
    assert not fitted.separated_
    assert fitted.converged_
    reference = scipy_fit(scores, labels, np.ones(3, dtype=bool))
    np.testing.assert_allclose(fitted.scale_, reference[:3], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(fitted.bias_, reference[3:], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("value", [0.7, 0.0, -3.0])
def test_constant_column_scale_is_pinned_to_one(value: float) -> None:
    """Only w_k c + b_k is determined by a constant column: scale_[k] is 1 exactly and
    the rest is the optimum of the NLL with that scale fixed (scipy's)."""
    rng = np.random.default_rng(5)
    scores = rng.normal(size=(500, 3)) * 1.5
    scores[:, 1] = value
    labels = noisy_labels(scores, rng)
    fitted = crossent.VectorScaling().fit(scores, labels)
    assert fitted.scale_[1] == 1.0
    assert not fitted.separated_
    assert fitted.converged_
    reference = scipy_fit(scores, labels, np.array([True, False, True]))
    np.testing.assert_allclose(fitted.scale_, reference[:3], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(fitted.bias_, reference[3:], rtol=1e-6, atol=1e-8)
    assert nll(scores, labels, fitted.scale_, fitted.bias_) == pytest.approx(
        nll(scores, labels, reference[:3], reference[3:]), rel=1e-12
    )


def test_constant_probabilities_column_is_pinned_too() -> None:
    """form='probs': the log of a column that is the same on every row."""
    rng = np.random.default_rng(6)
    rest = rng.dirichlet([2.0, 2.0], size=300) * 0.8
    probs = np.column_stack([rest[:, 0], np.full(300, 0.2), rest[:, 1]])
    labels = noisy_labels(np.log(probs), rng)
    fitted = crossent.VectorScaling().fit(probs, labels, form="probs")
    assert fitted.scale_[1] == 1.0
    reference = scipy_fit(np.log(probs), labels, np.array([True, False, True]))
    np.testing.assert_allclose(fitted.scale_, reference[:3], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(fitted.bias_, reference[3:], rtol=1e-6, atol=1e-8)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    classes=st.integers(2, 3),
    rows=st.integers(3, 9),
)
def test_separated_iff_no_positive_null_vector(
    data: st.DataObject, classes: int, rows: int
) -> None:
    """Small integer scores (ties, constant columns, near-separations): ``separated_``
    is the dual linear program's answer."""
    scores = np.array(
        data.draw(
            st.lists(
                st.lists(st.integers(-2, 2), min_size=classes, max_size=classes),
                min_size=rows,
                max_size=rows,
            )
        ),
        dtype=np.float64,
    )
    labels = np.array(
        data.draw(st.lists(st.integers(0, classes - 1), min_size=rows, max_size=rows))
    )
    fitted = crossent.VectorScaling().fit(scores, labels)
    assert fitted.separated_ == (not overlap_by_dual(scores, labels))
    assert not (fitted.separated_ and fitted.converged_)
