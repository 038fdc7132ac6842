"""Bootstrap intervals: reproducible, equal to resampling by hand, shrinking with n."""

from __future__ import annotations

import numpy as np
import pytest

import crossent

from tolerances import CLOSED_FORM, SUM


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 4)) * 2
    return logits, rng.integers(0, 4, size=n)


def test_same_seed_same_interval_and_value_is_the_full_sample_metric() -> None:
    logits, labels = _data(400)
    a = crossent.bootstrap_interval("nll", logits, labels, form="logits", resamples=300, seed=3)
    b = crossent.bootstrap_interval("nll", logits, labels, form="logits", resamples=300, seed=3)
    assert a == b
    assert a.value == pytest.approx(
        crossent.negative_log_likelihood(logits, labels, form="logits"), rel=SUM.rtol
    )
    assert a.low < a.value < a.high


@pytest.mark.parametrize("metric", ["nll", "brier", "accuracy", "spherical"])
def test_replicates_equal_the_metric_on_resampled_rows(metric: str) -> None:
    """The weighted-count shortcut equals recomputing the metric on drawn rows."""
    logits, labels = _data(200, seed=1)
    functions = {
        "nll": crossent.negative_log_likelihood,
        "brier": crossent.brier_score,
        "accuracy": crossent.accuracy,
        "spherical": crossent.spherical_score,
        "calibration_error": lambda *a, **k: crossent.calibration_error(*a, **k).value,
    }
    rng = np.random.default_rng(11)
    replicates = []
    for _ in range(50):
        rows = rng.integers(0, 200, size=200)
        replicates.append(functions[metric](logits[rows], labels[rows], form="logits"))
    low, high = np.quantile(replicates, [0.025, 0.975])
    ours = crossent.bootstrap_interval(metric, logits, labels, form="logits", resamples=50, seed=11)
    assert ours.low == pytest.approx(low, rel=CLOSED_FORM.rtol)
    assert ours.high == pytest.approx(high, rel=CLOSED_FORM.rtol)


def test_nll_interval_agrees_with_the_normal_approximation_and_shrinks() -> None:
    widths = []
    for n in (500, 8000):
        logits, labels = _data(n, seed=n)
        per_row = crossent.negative_log_likelihood(logits, labels, form="logits", reduction="none")
        half = 1.96 * per_row.std(ddof=1) / np.sqrt(n)
        ci = crossent.bootstrap_interval("nll", logits, labels, form="logits", resamples=1000)
        assert (ci.high - ci.low) / 2 == pytest.approx(half, rel=0.15)
        widths.append(ci.high - ci.low)
    assert widths[1] < widths[0] / 3


def test_compare_log_loss_pairs_examples() -> None:
    logits, labels = _data(1000, seed=4)
    same = crossent.compare_log_loss(
        logits, logits, labels, form_a="logits", form_b="logits", resamples=100
    )
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0)
    other = crossent.compare_log_loss(
        logits, logits * 0.5, labels, form_a="logits", form_b="logits"
    )
    assert other.difference == pytest.approx(other.nll_a - other.nll_b, rel=CLOSED_FORM.rtol)
    assert other.nll_a == pytest.approx(
        crossent.negative_log_likelihood(logits, labels, form="logits"), rel=SUM.rtol
    )
    assert other.low < other.difference < other.high


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x, y: crossent.bootstrap_interval("ece", x, y, form="logits"), "`metric`"),
        (
            lambda x, y: crossent.bootstrap_interval("nll", x, y, form="logits", confidence=1.0),
            "`confidence`",
        ),
        (
            lambda x, y: crossent.bootstrap_interval("nll", x, y, form="logits", resamples=0),
            "`resamples`",
        ),
        (
            lambda x, y: crossent.bootstrap_interval("nll", x, y, form="logits", bins=3),
            "calibration_error' only",
        ),
        (
            lambda x, y: crossent.compare_log_loss(
                x, x[:, :3], y, form_a="logits", form_b="logits"
            ),
            "same shape",
        ),
    ],
)
def test_bad_options_are_rejected(call: object, message: str) -> None:
    logits, labels = _data(20)
    with pytest.raises(crossent.InputError, match=message):
        call(logits, labels)  # type: ignore[operator]


@pytest.mark.parametrize("scope", ["top-label", "class-wise"])
def test_calibration_interval_agrees_with_resampling_rows_by_hand(scope: str) -> None:
    """Bin-by-bin drawing (top-label) and count weights (class-wise) give the distribution of
    the metric on resampled rows: the two intervals agree to Monte Carlo error."""
    logits, labels = _data(3000, seed=6)
    rng = np.random.default_rng(123)
    by_hand = []
    for _ in range(1500):
        rows = rng.integers(0, 3000, size=3000)
        result = crossent.calibration_error(logits[rows], labels[rows], form="logits", scope=scope)
        by_hand.append(result.value)
    low, high = np.quantile(by_hand, [0.025, 0.975])
    ours = crossent.bootstrap_interval(
        "calibration_error", logits, labels, form="logits", scope=scope, resamples=1500, seed=5
    )
    width = high - low
    assert abs(ours.low - low) < 0.1 * width
    assert abs(ours.high - high) < 0.1 * width


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"seed": -1}, r"`seed` must be a non-negative integer; got -1"),
        ({"seed": 1.5}, r"`seed` must be a non-negative integer"),
        ({"resamples": np.int64(0)}, r"`resamples` must be a positive integer"),
    ],
)
def test_resampling_integers_are_checked(options: dict[str, object], message: str) -> None:
    logits, labels = _data(20)
    with pytest.raises(crossent.InputError, match=message):
        crossent.bootstrap_interval("nll", logits, labels, form="logits", **options)  # type: ignore[arg-type]


def test_folds_below_two_are_rejected() -> None:
    logits, labels = _data(20)
    with pytest.raises(crossent.InputError, match=r"`folds` must be an integer >= 2; got 1"):
        crossent.recalibration_gap(logits, labels, folds=1)
