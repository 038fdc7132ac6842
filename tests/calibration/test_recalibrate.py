"""Recalibration: planted temperatures, the convex solve against a generic optimiser, guards."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize

import crossent

from tolerances import CLOSED_FORM, OUTSIDE_SOLVER, ROUNDING, SOLVER


def _calibrated(
    n: int, classes: int, seed: int, scale: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits): calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * scale
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = (probs.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)
    return logits, np.minimum(labels, classes - 1)


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    return crossent.negative_log_likelihood(logits / temperature, labels, form="logits")


@pytest.mark.parametrize("planted", [0.4, 1.0, 2.5, 6.0])
def test_recovers_a_planted_temperature(planted: float) -> None:
    logits, labels = _calibrated(20000, 10, seed=1)
    scaler = crossent.TemperatureScaling(guard=False).fit(logits * planted, labels)
    assert scaler.temperature_ == pytest.approx(planted, rel=0.05)
    assert scaler.converged_
    assert not scaler.at_bound_


def test_solution_matches_a_generic_bounded_minimiser_and_is_stationary() -> None:
    logits, labels = _calibrated(3000, 5, seed=2)
    logits = logits * 1.7
    scaler = crossent.TemperatureScaling(guard=False).fit(logits, labels)
    reference = optimize.minimize_scalar(
        lambda t: _nll(logits, labels, t),
        bounds=(0.05, 20),
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert scaler.fitted_temperature_ == pytest.approx(reference.x, **SOLVER.rel_abs())
    assert abs(scaler.gradient_) < 1e-8
    assert scaler.nll_after_ == pytest.approx(
        _nll(logits, labels, scaler.fitted_temperature_), **CLOSED_FORM.rel_abs()
    )
    assert scaler.nll_after_ <= scaler.nll_before_
    assert scaler.n_iter_ < 20


def test_separable_data_stops_at_the_lower_bound_instead_of_diverging() -> None:
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [3.0, 1.0]])
    labels = np.array([0, 1, 0])
    scaler = crossent.TemperatureScaling(guard=False, bounds=(0.1, 10.0)).fit(logits, labels)
    assert scaler.at_bound_
    assert not scaler.converged_
    assert scaler.temperature_ == pytest.approx(0.1, **CLOSED_FORM.rel_abs())


def test_all_wrong_predictions_stop_at_the_upper_bound() -> None:
    logits = np.array([[5.0, 0.0], [0.0, 5.0]] * 3)
    labels = np.array([1, 0] * 3)
    scaler = crossent.TemperatureScaling(guard=False, bounds=(0.1, 10.0)).fit(logits, labels)
    assert scaler.at_bound_
    assert scaler.temperature_ == pytest.approx(10.0, **CLOSED_FORM.rel_abs())


def test_guard_keeps_identity_exactly_when_held_out_nll_does_not_improve() -> None:
    kept = improved = 0
    for seed in range(12):
        logits, labels = _calibrated(60, 4, seed=seed)
        scaler = crossent.TemperatureScaling().fit(logits, labels)
        assert scaler.cross_fitted_nll_ is not None
        if scaler.cross_fitted_nll_ >= scaler.nll_before_:
            assert scaler.temperature_ == 1.0
            assert scaler.kept_identity_
            kept += 1
        else:
            assert scaler.temperature_ == scaler.fitted_temperature_
            assert not scaler.kept_identity_
            improved += 1
    assert kept
    assert improved
    over_confident = crossent.TemperatureScaling().fit(*_scaled(_calibrated(2000, 4, seed=0), 3.0))
    assert over_confident.temperature_ == pytest.approx(3.0, rel=0.15)


def _scaled(data: tuple[np.ndarray, np.ndarray], factor: float) -> tuple[np.ndarray, np.ndarray]:
    return data[0] * factor, data[1]


def test_transform_returns_normalised_distributions_and_forms_agree() -> None:
    logits, labels = _calibrated(500, 3, seed=4)
    scaler = crossent.TemperatureScaling(guard=False).fit(logits * 2, labels)
    probs = scaler.transform(logits * 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=ROUNDING.rtol)
    log_probs = np.log(
        crossent.TemperatureScaling(guard=False).fit(logits * 2, labels).transform(logits * 2)
    )
    from_probs = crossent.TemperatureScaling(guard=False).fit(
        np.exp(log_probs), labels, form="probs"
    )
    assert from_probs.fitted_temperature_ == pytest.approx(1.0, **SOLVER.rel_abs())
    np.testing.assert_allclose(
        scaler.transform(logits * 2, output="log_probs"), np.log(probs), rtol=CLOSED_FORM.rtol
    )


def test_recalibration_gap_is_nll_minus_cross_fitted_nll() -> None:
    logits, labels = _calibrated(4000, 5, seed=5)
    assert abs(crossent.recalibration_gap(logits, labels)) < 2e-3
    gap = crossent.recalibration_gap(logits * 3, labels)
    scaler = crossent.TemperatureScaling(folds=5).fit(logits * 3, labels)
    assert gap == pytest.approx(scaler.nll_before_ - scaler.cross_fitted_nll_, **SOLVER.rel_abs())
    assert gap > 0.1
    assert crossent.recalibration_gap(logits * 3, labels, base=2) == pytest.approx(
        gap / math.log(2), **SOLVER.rel_abs()
    )


def test_vector_scaling_recovers_planted_scales_and_biases() -> None:
    logits, labels = _calibrated(20000, 3, seed=6, scale=1.0)
    planted = logits * np.array([2.0, 0.5, 1.0]) + np.array([1.0, -1.0, 0.0])
    fitted = crossent.VectorScaling().fit(planted, labels)
    z = fitted.scale_ * planted + fitted.bias_
    # Softmax is shift invariant: compare the recovered logits up to a per-row constant.
    centred = z - z.mean(axis=1, keepdims=True)
    truth = logits - logits.mean(axis=1, keepdims=True)
    assert np.max(np.abs(centred - truth)) < 0.2
    np.testing.assert_allclose(fitted.transform(planted).sum(axis=1), 1.0, rtol=ROUNDING.rtol)


def test_platt_scaling_matches_unregularised_logistic_regression() -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(7)
    s = rng.normal(size=3000) * 2
    y = (rng.random(3000) < 1 / (1 + np.exp(-(0.6 * s + 0.4)))).astype(int)
    logits = np.stack([np.zeros_like(s), s], axis=1)
    platt = crossent.PlattScaling().fit(logits, y)
    reference = linear_model.LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(
        s[:, None], y
    )
    assert platt.slope_ == pytest.approx(reference.coef_[0, 0], **OUTSIDE_SOLVER.rel_abs())
    assert platt.intercept_ == pytest.approx(reference.intercept_[0], **OUTSIDE_SOLVER.rel_abs())
    probs = platt.transform(logits)
    np.testing.assert_allclose(
        probs[:, 1], reference.predict_proba(s[:, None])[:, 1], **OUTSIDE_SOLVER.tol()
    )


def test_histogram_binning_maps_to_smoothed_bin_rates_and_normalises() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.35, 0.65]])
    labels = np.array([0, 1, 1, 1])
    binning = crossent.HistogramBinning(bins=2).fit(probs, labels)
    # class 1, upper bin [0.5, 1]: 2 examples, both class 1 -> (2 + 1) / (2 + 2)
    assert binning.rates_[1, 1] == pytest.approx(0.75, **CLOSED_FORM.rel_abs())
    out = binning.transform(probs)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=ROUNDING.rtol)
    assert np.all(out > 0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: crossent.TemperatureScaling(bounds=(2.0, 5.0)).fit(
                np.zeros((4, 2)), [0, 1, 0, 1]
            ),
            "low < 1 < high",
        ),
        (
            lambda: crossent.TemperatureScaling(bounds=(-1.0, 5.0)).fit(
                np.zeros((4, 2)), [0, 1, 0, 1]
            ),
            r"bounds\[0\]",
        ),
        (lambda: crossent.TemperatureScaling().transform(np.zeros((2, 2))), "not fitted"),
        (lambda: crossent.TemperatureScaling().fit(np.zeros((3, 2)), [0, 1, 0]), "at least 5 rows"),
        (
            lambda: crossent.TemperatureScaling(guard=False).fit(
                np.array([[1.0, 0.0]]), [1], form="probs"
            ),
            "row 0's label has probability 0",
        ),
        (lambda: crossent.PlattScaling().fit(np.zeros((3, 3)), [0, 1, 2]), "for 2 classes"),
    ],
)
def test_bad_use_is_reported(make: object, message: str) -> None:
    with pytest.raises(crossent.InputError, match=message):
        make()  # type: ignore[operator]


def test_probabilities_with_exact_zeros_fit_like_their_logits() -> None:
    logits = np.array([[2.0, -np.inf, 0.0], [0.0, 1.0, -np.inf], [1.0, 0.5, -np.inf]] * 20)
    labels = np.array([0, 1, 1] * 20)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    from_logits = crossent.TemperatureScaling(guard=False).fit(logits, labels)
    from_probs = crossent.TemperatureScaling(guard=False).fit(probs, labels, form="probs")
    assert from_probs.fitted_temperature_ == pytest.approx(
        from_logits.fitted_temperature_, **CLOSED_FORM.rel_abs()
    )
    assert np.all(from_probs.transform(probs, form="probs")[:, 2][:3] >= 0)


def test_cross_fitting_reads_subsets_lazily_from_a_memory_map(tmp_path: object) -> None:
    """A memory-mapped input gives the same numbers as the array it holds."""
    logits, labels = _calibrated(3000, 4, seed=9)
    path = tmp_path / "logits.npy"  # type: ignore[operator]
    np.save(path, (logits * 2).astype(np.float32))
    mapped = np.load(path, mmap_mode="r")
    in_memory = np.asarray(mapped)
    assert crossent.recalibration_gap(mapped, labels) == crossent.recalibration_gap(
        in_memory, labels
    )


@pytest.mark.parametrize(
    ("values", "form"),
    [
        (np.array([[0.5, 0.5], [1.0, 0.0], [0.3, 0.7]]), "probs"),
        (np.array([[np.log(0.5)] * 2, [0.0, -np.inf], [np.log(0.3), np.log(0.7)]]), "log_probs"),
    ],
)
def test_a_label_of_probability_zero_names_its_row(values: np.ndarray, form: str) -> None:
    scaler = crossent.TemperatureScaling(guard=False)
    with pytest.raises(crossent.InputError, match="row 1's label has probability 0"):
        scaler.fit(values, np.array([0, 1, 1]), form=form)
