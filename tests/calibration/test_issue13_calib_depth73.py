"""Issue 13, stop 73, branch calib2: stop 72's calibration follow-ups at their depth.

(1) ``bootstrap_interval("calibration_error")``'s value is ``calibration_error``'s by
construction: the interval sums its bins block by block over the function's blocks
(``_error.block_bounds``), where hostile4 replaced the interval's value by a second
pass of ``calibration_error_of`` over all rows.  (2) The report's ECE (``to_dict()["ece"]``
and ``Report.summary.calibration``) is the same computation: it summed the rows' bins at
once, the summary the state's bins over the report's batches of 2^15 rows, up to 1e-14
relative off the function past 200 000 rows.  (3) ``TemperatureScaling.nll_before_``,
``cross_fitted_nll_`` and ``negative_log_likelihood`` of logits more than 1.8e308 apart
were ``+inf`` where the mean fits in float64 (oracle: mpmath at 60 digits on the float64
values as given).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import crossent
from crossent.calibration import _bootstrap, _error, _temperature

MP = mpmath.mp.clone()
MP.dps = 60


def _mean_nll_oracle(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean of ``logsumexp(z / T) - z_y / T`` over the rows, exactly (mpmath)."""
    total = MP.mpf(0)
    for row, label in zip(logits.tolist(), labels.tolist(), strict=True):
        scaled = [MP.mpf(v) / MP.mpf(temperature) for v in row]
        top = max(scaled)
        total += top + MP.log(MP.fsum(MP.exp(v - top) for v in scaled)) - scaled[label]
    return float(total / len(logits))


def _rows(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits of ``n`` rows and labels drawn from their softmax."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 2.0
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = (rng.random(n)[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
    return logits, np.minimum(labels, classes - 1)


@pytest.fixture(scope="module")
def big() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Inputs past 200 000 rows (several of the function's blocks): multiclass
    probabilities (float64 and float32), logits and log-probabilities, and a 1-D binary
    probability."""
    logits, labels = _rows(262_145, 5, seed=3)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    z, _ = _rows(210_001, 1, seed=4)
    p = 1.0 / (1.0 + np.exp(-z[:, 0]))
    y = (np.random.default_rng(5).random(p.shape[0]) < p).astype(np.int64)
    return {
        "probs": (probs, labels),
        "probs32": (probs.astype(np.float32), labels),
        "logits": (logits, labels),
        "log_probs": (np.log(probs), labels),
        "binary": (p, y),
    }


_FORMS = {"probs": "probs", "probs32": "probs", "logits": "logits", "log_probs": "log_probs",
          "binary": "probs"}  # fmt: skip

_SPECS = [
    {"bins": 1, "closed": "right"},
    {"bins": 7, "norm": "l2"},
    {"bins": 15},
    {"bins": 15, "norm": "l2", "debias": True, "closed": "right"},
    {"bins": 100, "norm": "max"},
    {"bins": 100},
]


@pytest.mark.parametrize("name", ["probs", "probs32", "logits", "log_probs", "binary"])
def test_bootstrap_value_is_calibration_errors_past_2e5_rows(big, name):
    """The interval's own value, summed block by block as the function sums its bins,
    is the function's number (bits) for every definition; guard: main reached the same
    bits by a second pass over the data."""
    values, labels = big[name]
    form = _FORMS[name]
    for options in _SPECS:
        expected = crossent.calibration_error(values, labels, form=form, **options).value
        interval = crossent.bootstrap_interval(
            "calibration_error", values, labels, form=form, resamples=1, **options
        )
        assert interval.value == expected, (name, options)


def test_bootstrap_calibration_error_takes_no_second_pass(big, monkeypatch):
    """The top-label equal-width interval never runs calibration_error's own pass
    (``uniform_top_label_statistics``): its value comes from the rows it resamples.
    Fails on main (hostile4's second pass over all rows)."""
    values, labels = big["probs"]
    expected = crossent.calibration_error(values, labels, bins=15).value

    def refused(*args, **kwargs):
        raise AssertionError("a second pass over the rows")

    monkeypatch.setattr(_error, "uniform_top_label_statistics", refused)
    interval = crossent.bootstrap_interval("calibration_error", values, labels, resamples=2)
    assert interval.value == expected


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("probs", {"bins": 1, "closed": "right"}),
        ("logits", {"bins": 7, "norm": "l2"}),
        ("log_probs", {"bins": 15}),
    ],
)
def test_report_ece_is_calibration_errors_past_2e5_rows(big, name, options):
    """The report's ECE (JSON) and its summary's calibration are calibration_error's
    number to the bit (main: the rows' bins at once, and the state's over batches of
    2^15 rows, up to 1e-14 relative apart past 200 000 rows)."""
    values, labels = big[name]
    values, labels = values[:210_001], labels[:210_001]
    form = _FORMS[name]
    expected = crossent.calibration_error(values, labels, form=form, **options).value
    report = crossent.report(values, labels, form=form, resamples=1, **options)
    assert report.to_dict()["ece"]["value"] == expected
    assert report.summary.calibration.value == expected


# Rows of logits more than float64's largest number apart: row 0's NLL is 2e308 (past
# float64) while the mean over the rows fits.
FAR = np.array([[1e308, -1e308], [0.0, 1.0], [-1e308, 1e308], [2.0, 0.0], [0.5, 0.0], [0.0, 3.0]])
FAR_LABELS = np.array([1, 0, 0, 0, 1, 1])


@pytest.mark.parametrize("twin", [False, True], ids=["fused", "numpy"])
def test_nll_before_of_far_logits_is_finite(twin, monkeypatch):
    """``nll_before_`` (T = 1) is the mean NLL, 6.7e307, where it was +inf (hostile4
    fixed ``nll_after_`` only), by the compiled pass and its NumPy twin.  (Only float64
    logits can be so far apart: float32's are computed in float64.)"""
    if twin:
        monkeypatch.setattr(_temperature, "_fused_kernel", lambda predictions: None)
    logits, labels = np.tile(FAR, (2, 1)), np.tile(FAR_LABELS, 2)
    scaler = crossent.TemperatureScaling(guard=False).fit(logits, labels)
    assert scaler.nll_before_ == pytest.approx(_mean_nll_oracle(logits, labels), rel=1e-14)
    assert scaler.nll_after_ == pytest.approx(
        _mean_nll_oracle(logits, labels, scaler.temperature_), rel=1e-14
    )


def test_negative_log_likelihood_of_far_logits_is_finite():
    """The mean NLL of logits more than 1.8e308 apart (1e308 here, the oracle's),
    in nats and bits, and the report's: each was +inf."""
    expected = _mean_nll_oracle(FAR, FAR_LABELS)
    assert crossent.negative_log_likelihood(FAR, FAR_LABELS, form="logits") == pytest.approx(
        expected, rel=1e-14
    )
    bits = crossent.negative_log_likelihood(FAR, FAR_LABELS, form="logits", base=2)
    assert bits == pytest.approx(expected / float(MP.log(2)), rel=1e-14)
    # a label of probability 0 keeps +inf: no clipping
    zero = np.array([[0.0, -np.inf], [1.0, 0.0]])
    assert crossent.negative_log_likelihood(zero, [1, 0], form="logits") == np.inf


def test_cross_fitted_nll_of_far_logits_is_finite():
    """The folds' NLLs at T = 2 (about 1e308 a far row) summed past float64: the
    cross-fitted NLL was +inf, so the guard kept T = 1 (``kept_identity_``) where the
    fitted temperature halves the NLL."""
    logits, labels = np.tile(FAR, (4, 1)), np.tile(FAR_LABELS, 4)
    scaler = crossent.TemperatureScaling(bounds=(0.5, 2.0)).fit(logits, labels)
    assert np.isfinite(scaler.cross_fitted_nll_)
    assert scaler.cross_fitted_nll_ == pytest.approx(
        _mean_nll_oracle(logits, labels, 2.0), rel=1e-14
    )
    assert not scaler.kept_identity_
    assert scaler.temperature_ == 2.0


def _replicate_oracle(losses: list[mpmath.mpf], resamples: int, seed: int) -> np.ndarray:
    """Each resample's mean of ``losses`` (exact, then rounded), drawn as the bootstrap
    draws them (``resample_counts``)."""
    means = []
    for weights in _bootstrap.resample_counts(len(losses), resamples, seed):
        means.append(
            float(
                MP.fsum(MP.mpf(float(w)) * v for w, v in zip(weights, losses, strict=True))
                / len(losses)
            )
        )
    return np.array(means)


def _row_losses(logits: np.ndarray, labels: np.ndarray) -> list[mpmath.mpf]:
    """Each row's NLL, exactly (mpmath)."""
    out = []
    for row, label in zip(logits.tolist(), labels.tolist(), strict=True):
        values = [MP.mpf(v) for v in row]
        top = max(values)
        out.append(top + MP.log(MP.fsum(MP.exp(v - top) for v in values)) - values[label])
    return out


def test_bootstrap_nll_of_far_logits():
    """``bootstrap_interval("nll")`` of logits more than 1.8e308 apart: every resample's
    mean is the exact mean of its rows (+inf only past float64), where the ends were
    +inf beside the value 1e308 (each far row's surprisal +inf)."""
    interval = crossent.bootstrap_interval("nll", FAR, FAR_LABELS, form="logits", resamples=40)
    replicates = _replicate_oracle(_row_losses(FAR, FAR_LABELS), 40, 0)
    low, high = _bootstrap.percentile_interval(replicates, 0.95)
    assert interval.value == pytest.approx(_mean_nll_oracle(FAR, FAR_LABELS), rel=1e-14)
    assert np.isfinite(interval.low)
    assert interval.low == pytest.approx(low, rel=1e-13)
    assert interval.high == pytest.approx(high, rel=1e-13)


def test_compare_log_loss_of_far_logits():
    """``compare_log_loss`` of two models with rows more than 1.8e308 apart: the
    difference and its interval (mpmath), where the difference was +inf, or both
    models' far rows were refused as "a true label probability 0"."""
    other = FAR / 2.0
    result = crossent.compare_log_loss(
        FAR, other, FAR_LABELS, form_a="logits", form_b="logits", resamples=40
    )
    losses = [
        a - b
        for a, b in zip(_row_losses(FAR, FAR_LABELS), _row_losses(other, FAR_LABELS), strict=True)
    ]
    low, high = _bootstrap.percentile_interval(_replicate_oracle(losses, 40, 0), 0.95)
    expected = float(MP.fsum(losses) / len(losses))
    assert result.difference == pytest.approx(expected, rel=1e-14)
    assert result.low == pytest.approx(low, rel=1e-13)
    assert result.high == pytest.approx(high, rel=1e-13)
    # both models with far rows (rows 0, 2 and row 3): refused on main as two +inf NLLs
    rolled = np.roll(FAR, 1, axis=0)
    both = crossent.compare_log_loss(
        FAR, rolled, FAR_LABELS, form_a="logits", form_b="logits", resamples=10
    )
    assert both.difference == pytest.approx(
        _mean_nll_oracle(FAR, FAR_LABELS) - _mean_nll_oracle(rolled, FAR_LABELS), rel=1e-14
    )
