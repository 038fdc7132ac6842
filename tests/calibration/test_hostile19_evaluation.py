"""Hostile tests (issue 13, branch hostile19) of the evaluation API's input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent

# A softmax row computed in float16 and then renormalised as the row-sum error message
# advises, ``p / p.sum(-1, keepdims=True)``, all in float16: the sum 1.0 + 2**-11
# rounded to float16 scales every entry down, and the row sums to 0.99939 (off by 6.1e-4;
# the float16 tolerance was 5.5e-4, as if the sum were kept in float32).
_RENORMALISED_FLOAT16 = np.array([[0.2335, 0.378, 0.3892]], dtype=np.float16)


def _float16_renormalised() -> np.ndarray:
    row = _RENORMALISED_FLOAT16
    renormalised = row / row.sum(axis=1, keepdims=True)
    assert renormalised.dtype == np.float16
    assert abs(float(renormalised.astype(np.float64).sum()) - 1) > 6e-4
    return renormalised


@pytest.mark.parametrize("label", [0, 2])
def test_hostile19_float16_row_normalised_in_float16_is_taken(label: int) -> None:
    """Main: InputError "row 0 sums to 0.99939 (|error| 0.00061 > tolerance 0.00055)"."""
    probs = _float16_renormalised()
    labels = np.array([label])
    want = -math.log(float(probs[0, label]))  # the float64 oracle of the stored values
    assert crossent.negative_log_likelihood(probs, labels) == pytest.approx(want, rel=1e-6)
    state = crossent.EvaluationState(3).update(probs, labels).compute()
    assert state.nll == pytest.approx(want, rel=1e-6)


def test_hostile19_float16_tolerance_still_refuses_what_is_not_rounding() -> None:
    """Guard (kills a tolerance widened to 1e-2): a float16 row summing to 1.01 is refused,
    naming the row and its sum."""
    probs = np.array([[0.5, 0.5], [0.5, 0.51]], dtype=np.float16)
    with pytest.raises(crossent.InputError, match=r"row 1 sums to 1\.0"):
        crossent.negative_log_likelihood(probs, np.array([0, 1]))


def test_hostile19_compare_log_loss_rows_differ_names_both_models() -> None:
    """Main blamed the labels, which match `probs_a`: "`labels` must have the batch shape
    of `probs_b` (10,) ...; got (500,)"."""
    probs = np.full((500, 2), 0.5)
    labels = np.zeros(500, dtype=np.int64)
    with pytest.raises(
        crossent.InputError, match=r"`probs_a` and `probs_b`.*\(500, 2\) and \(10, 2\)"
    ):
        crossent.compare_log_loss(probs, probs[:10], labels, resamples=10)
    with pytest.raises(
        crossent.InputError, match=r"`probs_a` and `probs_b`.*\(500,\) and \(10, 2\)"
    ):
        crossent.compare_log_loss(probs[:, 1], probs[:10], labels, resamples=10)


def _binary_sample() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(18)  # on main every mean below was 1 ulp off
    probs = rng.random(64)
    return probs, (rng.random(64) < probs).astype(np.int64)


def test_hostile19_bootstrap_value_is_the_scoring_functions_number() -> None:
    """An interval's ``value`` is the metric on the full sample: main's NumPy pairwise sum
    was 1 ulp off ``negative_log_likelihood`` (nats and bits), ``brier_score`` and
    ``spherical_score`` here (15 of 60 random samples for the NLL)."""
    probs, labels = _binary_sample()
    scores = {
        "nll": crossent.negative_log_likelihood,
        "brier": crossent.brier_score,
        "spherical": crossent.spherical_score,
        "accuracy": crossent.accuracy,
    }
    for metric, score in scores.items():
        interval = crossent.bootstrap_interval(metric, probs, labels, resamples=2)
        assert interval.value == float(score(probs, labels)), metric
    bits = crossent.bootstrap_interval("nll", probs, labels, resamples=2, base=2)
    assert bits.value == float(crossent.negative_log_likelihood(probs, labels, base=2))


def test_hostile19_compare_log_loss_nlls_are_negative_log_likelihoods() -> None:
    """``nll_a``/``nll_b`` are ``negative_log_likelihood``'s numbers, as the source says
    (main: 1 ulp off), for each model's form and in bits."""
    probs, labels = _binary_sample()
    other = np.clip(probs * 0.9 + 0.05, 0.0, 1.0)
    result = crossent.compare_log_loss(np.log(probs), other, labels, form_a="logits", resamples=2)
    assert result.nll_a == float(
        crossent.negative_log_likelihood(np.log(probs), labels, form="logits")
    )
    assert result.nll_b == float(crossent.negative_log_likelihood(other, labels))
    bits = crossent.compare_log_loss(probs, other, labels, resamples=2, base=2)
    assert bits.nll_a == float(crossent.negative_log_likelihood(probs, labels, base=2))
