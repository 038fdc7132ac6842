"""Issue 10, "Tests that let bugs through": tests that kill calibration's surviving mutants.

Each test here was checked to fail on the mutant it names (applied to ``src/`` by hand).
The oracles are written here from the papers, independently of ``crossent.calibration``.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import crossent

from tolerances import CLOSED_FORM, SUM, assert_close, close

RNG = np.random.default_rng(20191010)


def _random_probs(n: int, classes: int, rng: np.random.Generator) -> np.ndarray:
    logits = rng.normal(size=(n, classes)) * 1.5
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True)


def _bins_of(confidence: np.ndarray, bins: int) -> list[np.ndarray]:
    """Indices of each equal-width bin [a, b), the last closed, by direct comparison."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    members = []
    for b in range(bins):
        upper = confidence <= edges[b + 1] if b == bins - 1 else confidence < edges[b + 1]
        members.append(np.flatnonzero((confidence >= edges[b]) & upper))
    return members


def _kumar_unbiased_square_ce(confidence: np.ndarray, hits: np.ndarray, bins: int) -> float:
    """Kumar, Liang and Ma (2019), arXiv:1909.10155, ``unbiased_square_ce``.

    Per bin: ``(mean hit - mean confidence)^2 - h(1 - h)/(len - 1)``, 0 for a bin of
    fewer than 2 examples; weighted by the bin's share of ALL examples (``len / n``,
    one-example bins included in ``n``).
    """
    n = confidence.size
    total = 0.0
    for members in _bins_of(confidence, bins):
        size = members.size
        if size < 2:
            continue
        h = float(np.mean(hits[members]))
        c = float(np.mean(confidence[members]))
        total += size / n * ((h - c) ** 2 - h * (1.0 - h) / (size - 1.0))
    return total


def _plug_in_square_ce(confidence: np.ndarray, hits: np.ndarray, bins: int) -> float:
    n = confidence.size
    return sum(
        m.size / n * (float(np.mean(hits[m])) - float(np.mean(confidence[m]))) ** 2
        for m in _bins_of(confidence, bins)
        if m.size
    )


@pytest.mark.parametrize("seed", range(6))
def test_issue10_tests_debiased_l2_on_small_bins_matches_kumar(seed: int) -> None:
    # Bins of 1-4 examples: the (n_b - 1) denominator, the zero for one-example bins and
    # their weight in n all change the value (mutants: n_b, dropping them from n).
    rng = np.random.default_rng(seed)
    bins = 20
    sizes = rng.integers(1, 5, size=10)  # bins 10..19 hold top-label confidences > 0.5
    sizes[rng.integers(0, 10)] = 1
    sizes[rng.integers(0, 10)] = 3
    confidence = np.concatenate(
        [rng.uniform((10 + b) / bins, (11 + b) / bins, size=s) for b, s in enumerate(sizes)]
    )
    # miscalibrated: hits at the rate 0.9 * confidence
    hits = (rng.random(confidence.size) < 0.9 * confidence).astype(np.float64)
    probs = np.stack([confidence, 1.0 - confidence], axis=1)
    labels = np.where(hits == 1.0, 0, 1)
    result = crossent.calibration_error(probs, labels, bins=bins, norm="l2", debias=True)
    square = _kumar_unbiased_square_ce(confidence, hits, bins)
    assert close(result.value, np.sqrt(max(square, 0.0)), SUM)
    state = crossent.EvaluationState(2, bins=bins).update(probs, labels)
    assert close(state.calibration(norm="l2", debias=True).value, result.value, SUM)


def test_issue10_tests_debiased_l2_positive_value_on_small_bins() -> None:
    # A clearly over-confident model on bins of 2-3 examples: the debiased square is
    # positive, so the denominator and the one-example bins' weight show in the value.
    confidence = np.array([0.95, 0.96, 0.97, 0.91, 0.92, 0.75, 0.76, 0.77, 0.55])
    hits = np.array([0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    probs = np.stack([confidence, 1.0 - confidence], axis=1)
    labels = np.where(hits == 1.0, 0, 1)
    square = _kumar_unbiased_square_ce(confidence, hits, 10)
    assert square > 0.05
    got = crossent.calibration_error(probs, labels, bins=10, norm="l2", debias=True).value
    assert close(got, np.sqrt(square), SUM)


@pytest.mark.parametrize("debias", [False, True])
def test_issue10_tests_classwise_l2_is_root_of_mean_of_squares(debias: bool) -> None:
    # Kumar et al. (2019)'s marginal L2 error: (1/K sum_k CE_k^2)^(1/2), not the mean of
    # the per-class roots (a mutant no test saw: class-wise scope never met norm="l2").
    rng = np.random.default_rng(7)
    n, classes, bins = 400, 4, 8
    probs = _random_probs(n, classes, rng)
    probs[:, 0] = probs[:, 0] ** 0.5  # class 0 miscalibrated much more than the others
    probs /= probs.sum(axis=1, keepdims=True)
    labels = rng.integers(0, classes, size=n)
    squares = []
    for k in range(classes):
        hits = (labels == k).astype(np.float64)
        square = (_kumar_unbiased_square_ce if debias else _plug_in_square_ce)(
            probs[:, k], hits, bins
        )
        squares.append(square)
    expected = float(np.sqrt(max(np.mean(squares), 0.0)))
    mean_of_roots = float(np.mean(np.sqrt(np.maximum(squares, 0.0))))
    assert abs(expected - mean_of_roots) > 1e-3 * expected  # the test can tell them apart
    got = crossent.calibration_error(
        probs, labels, bins=bins, norm="l2", scope="class-wise", debias=debias
    )
    assert close(got.value, expected, SUM)
    state = crossent.EvaluationState(classes, bins=bins, scope="class-wise").update(probs, labels)
    assert close(state.calibration(norm="l2", debias=debias).value, expected, SUM)


def test_issue10_tests_guard_kept_identity_transform_uses_t_equal_1() -> None:
    # The guard keeps T = 1 on calibrated data; transform must then return softmax(z)
    # itself, not softmax(z / T_fitted) (mutant: transform divides by the in-sample T).
    kept = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        logits = rng.normal(size=(60, 4)) * 2.0
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        labels = np.minimum((probs.cumsum(axis=1) < rng.random((60, 1))).sum(axis=1), 3)
        scaler = crossent.TemperatureScaling().fit(logits, labels)
        temperature = 1.0 if scaler.kept_identity_ else scaler.fitted_temperature_
        expected = np.exp(logits / temperature - logits.max(axis=1, keepdims=True) / temperature)
        expected /= expected.sum(axis=1, keepdims=True)
        assert_close(scaler.transform(logits), expected, CLOSED_FORM)
        assert_close(scaler.transform(logits, output="log_probs"), np.log(expected), CLOSED_FORM)
        if scaler.kept_identity_:
            kept += 1
            assert abs(scaler.fitted_temperature_ - 1.0) > 1e-3  # T = 1 differs from T_fit
    assert kept


def _snapshot(state: crossent.EvaluationState) -> dict:
    return copy.deepcopy(state.__dict__)


def _assert_same_snapshot(before: dict, state: crossent.EvaluationState) -> None:
    after = state.__dict__
    assert before.keys() == after.keys()
    for key, value in before.items():
        if hasattr(value, "count") and hasattr(value, "hits"):  # BinStatistics
            for part in ("count", "confidence_sum", "hits"):
                np.testing.assert_array_equal(getattr(after[key], part), getattr(value, part))
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(after[key], value)
        else:
            assert after[key] == value, key


def _assert_same_summary(got: object, expected: object) -> None:
    for key, value in vars(expected).items():
        if isinstance(value, crossent.CalibrationError):
            assert getattr(got, key).value == value.value
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(getattr(got, key), value)
        else:
            assert getattr(got, key) == value, key


@pytest.mark.parametrize("scope", ["top-label", "class-wise"])
@pytest.mark.parametrize("binning", ["uniform", "quantile"])
def test_issue10_tests_merge_leaves_its_operands_unchanged(scope: str, binning: str) -> None:
    rng = np.random.default_rng(3)
    probs = _random_probs(300, 3, rng)
    labels = rng.integers(0, 3, size=300)

    def state(rows: slice) -> crossent.EvaluationState:
        return crossent.EvaluationState(3, bins=6, scope=scope, binning=binning, keep=4).update(
            probs[rows], labels[rows], first_row=rows.start
        )

    left, right = state(slice(0, 120)), state(slice(120, 300))
    before_left, before_right = _snapshot(left), _snapshot(right)
    summary_left, summary_right = left.compute(), right.compute()
    merged = left.merge(right)
    added = left + right
    _assert_same_snapshot(before_left, left)
    _assert_same_snapshot(before_right, right)
    # nor does updating the merged state write through into either operand
    merged.update(probs[:50], labels[:50])
    added.update(probs[:50], labels[:50])
    _assert_same_snapshot(before_left, left)
    _assert_same_snapshot(before_right, right)
    _assert_same_summary(left.compute(), summary_left)
    _assert_same_summary(right.compute(), summary_right)
    whole = state(slice(0, 300))
    assert close(left.merge(right).compute().nll, whole.compute().nll, SUM)


SCOPE_WORDS = {
    "top-label": "top-label (confidence = max_k p_k, hit = argmax is the label)",
    "class-wise": "class-wise (each class's p_k against [label = k], averaged over classes)",
    "positive-class": "positive-class (confidence = p_1, hit = [label = 1])",
}


@pytest.mark.parametrize("scope", list(SCOPE_WORDS))
def test_issue10_tests_mutation_run_definition_words_and_frozen_spec(scope: str) -> None:
    # mutmut survivors on _error.py: the scope words' keys and texts, a mutable spec
    import dataclasses

    probs, labels = np.array([[0.7, 0.3], [0.4, 0.6], [0.9, 0.1]]), np.array([0, 1, 1])
    spec = crossent.calibration_error(probs, labels, scope=scope, bins=4, closed="right").spec
    assert spec.definition == (
        f"L1 calibration error, {SCOPE_WORDS[scope]}, 4 equal-width bins "
        "(a, b] with the first bin closed, plug-in estimator"
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.bins = 3  # type: ignore[misc]
    assert hash(spec) == hash(dataclasses.replace(spec))
