"""Scores against independent oracles (scikit-learn, mpmath, direct formulas) and identities."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import crossent

from tolerances import CLOSED_FORM, ROUNDING, SUM

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def _data(n: int = 300, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 2
    labels = rng.integers(0, classes, size=n)
    return logits, labels


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_nll_matches_sklearn_log_loss() -> None:
    logits, labels = _data()
    probs = _softmax(logits)
    expected = sklearn_metrics.log_loss(labels, probs, labels=range(4))
    assert crossent.negative_log_likelihood(probs, labels) == pytest.approx(
        expected, rel=CLOSED_FORM.rtol
    )


def test_nll_forms_agree_and_equal_the_training_loss() -> None:
    logits, labels = _data()
    from_logits = crossent.negative_log_likelihood(logits, labels, form="logits")
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert crossent.negative_log_likelihood(log_probs, labels, form="log_probs") == pytest.approx(
        from_logits, rel=SUM.rtol
    )
    assert crossent.negative_log_likelihood(_softmax(logits), labels) == pytest.approx(
        from_logits, rel=SUM.rtol
    )
    assert from_logits == pytest.approx(
        float(crossent.softmax_cross_entropy(logits, labels)), rel=SUM.rtol
    )


def test_nll_bits_is_nats_over_log_two() -> None:
    logits, labels = _data()
    nats = crossent.negative_log_likelihood(logits, labels, form="logits")
    bits = crossent.negative_log_likelihood(logits, labels, form="logits", base=2)
    assert bits == pytest.approx(nats / math.log(2), rel=ROUNDING.rtol)


def test_nll_is_infinite_for_a_label_with_probability_zero() -> None:
    assert crossent.negative_log_likelihood([[1.0, 0.0]], [1]) == math.inf


def test_brier_sum_form_matches_the_definition() -> None:
    logits, labels = _data()
    probs = _softmax(logits)
    onehot = np.eye(4)[labels]
    expected = np.mean(np.sum((probs - onehot) ** 2, axis=1))
    assert crossent.brier_score(probs, labels) == pytest.approx(expected, rel=CLOSED_FORM.rtol)


def test_brier_matches_sklearn_multiclass_and_its_half_scale() -> None:
    logits, labels = _data()
    probs = _softmax(logits)
    expected = sklearn_metrics.brier_score_loss(labels, probs, labels=range(4))
    assert crossent.brier_score(probs, labels) == pytest.approx(expected, rel=CLOSED_FORM.rtol)
    halved = sklearn_metrics.brier_score_loss(labels, probs, labels=range(4), scale_by_half=True)
    assert crossent.brier_score(probs, labels, scale="half") == pytest.approx(
        halved, rel=CLOSED_FORM.rtol
    )


def test_brier_half_scale_matches_sklearn_for_two_classes() -> None:
    rng = np.random.default_rng(3)
    p1 = rng.random(200)
    y = (rng.random(200) < p1).astype(int)
    expected = sklearn_metrics.brier_score_loss(y, p1)
    probs = np.stack([1 - p1, p1], axis=1)
    assert crossent.brier_score(probs, y, scale="half") == pytest.approx(
        expected, rel=CLOSED_FORM.rtol
    )


def test_brier_of_a_near_certain_correct_prediction_keeps_its_precision() -> None:
    """p_y = 1 - delta from logits: the score is 2 delta^2 (to first order), not 0."""
    logits = np.array([[40.0, 0.0]])
    with mpmath.workdps(50):
        delta = 1 / (1 + mpmath.e**40)
        truth = float(2 * delta**2)
    assert crossent.brier_score(logits, [0], form="logits") == pytest.approx(
        truth, rel=CLOSED_FORM.rtol
    )


def test_spherical_score_matches_the_definition() -> None:
    logits, labels = _data()
    probs = _softmax(logits)
    expected = np.mean(probs[np.arange(300), labels] / np.linalg.norm(probs, axis=1))
    assert crossent.spherical_score(probs, labels) == pytest.approx(expected, rel=CLOSED_FORM.rtol)


def test_accuracy_matches_sklearn() -> None:
    logits, labels = _data()
    expected = sklearn_metrics.accuracy_score(labels, logits.argmax(axis=1))
    assert crossent.accuracy(logits, labels, form="logits") == expected


def test_reduction_none_gives_the_per_example_values() -> None:
    logits, labels = _data(n=7)
    per_row = crossent.negative_log_likelihood(logits, labels, form="logits", reduction="none")
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(per_row, -log_probs[np.arange(7), labels], rtol=SUM.rtol)


@given(
    st.integers(min_value=1, max_value=40),
    st.integers(min_value=2, max_value=6),
    st.integers(0, 2**32 - 1),
)
def test_scores_are_proper_for_the_true_distribution(n: int, classes: int, seed: int) -> None:
    """Reporting the true distribution scores no worse in expectation (propriety)."""
    rng = np.random.default_rng(seed)
    truth = rng.dirichlet(np.ones(classes), size=n)
    other = rng.dirichlet(np.ones(classes), size=n)
    # Expected score under the truth, computed exactly by summing over every label.
    for score in (crossent.brier_score,):
        honest = sum(
            float(np.sum(truth[:, k] * score(truth, np.full(n, k), reduction="none")))
            for k in range(classes)
        )
        dishonest = sum(
            float(np.sum(truth[:, k] * score(other, np.full(n, k), reduction="none")))
            for k in range(classes)
        )
        assert honest <= dishonest + 1e-12


def test_float32_rows_summing_to_one_within_1e_6_are_accepted() -> None:
    probs = np.full((3, 10), 0.1, dtype=np.float32)
    probs[:, 0] += np.float32(1e-6)
    assert np.isfinite(crossent.negative_log_likelihood(probs, [0, 1, 2]))


@pytest.mark.parametrize(
    ("probs", "labels", "message"),
    [
        ([[0.5, 0.5]], [2], r"`labels` must be integers in \[0, 2\).*row 0 has 2"),
        ([[0.5, 0.5]], [-1], r"row 0 has -1"),
        ([[0.5, 0.5], [math.nan, 0.5]], [0, 0], r"`probs` contains NaN at index \(1, 0\)"),
        ([[0.5, 0.6]], [0], r"row 0 sums to 1\.1"),
        ([[1.2, -0.2]], [0], r"must be non-negative.*-0\.2"),
        ([[0.5, 0.5]], [0.0], r"`labels` must be integer class ids"),
        ([[0.5, 0.5]], [0, 1], r"`labels` must have the batch shape"),
        ([[[0.5, 0.5]]], [0], r"`probs` must have shape \(n, classes\)"),
        # issue 14: a 1-D array is P(label = 1) of 2 examples, so 1 label is too few
        ([0.5, 0.5], [0], r"`labels` must have the batch shape"),
    ],
)
def test_bad_input_is_rejected_naming_the_row(probs: object, labels: object, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        crossent.negative_log_likelihood(np.asarray(probs), np.asarray(labels))


def test_form_is_never_guessed() -> None:
    logits, labels = _data(n=5)
    with pytest.raises(crossent.InputError, match="probs"):
        crossent.negative_log_likelihood(logits, labels)  # logits passed as probabilities
    with pytest.raises(crossent.InputError, match="`form`"):
        crossent.negative_log_likelihood(logits, labels, form="auto")
