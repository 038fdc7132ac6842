"""The report's calibration error at the fitted temperature with equal-mass bins, and the
note beside a recalibration gap that the largest temperature bound withholds.

``report(..., binning="quantile").to_dict()["temperature"]["ece"]`` was binned by an
:class:`EvaluationState`, whose equal-mass bins join fine logit cells (masses equal to
within a cell), while the report's own calibration error, and ``calibration_error`` of
the scaled probabilities, put the edges at the exact quantiles: 0.0601 where the
definition gives 0.0652 (500 binary rows, 15 bins); ``Report.summary.calibration`` was
that state's too (0.0955 beside the printed 0.1012).  Oracles: SciPy's softmax of
``z / T`` in float64, then NumPy's ``quantile`` edges and a direct per-bin sum.

A model whose predictions tell nothing about the labels (295 misses in 400 rows) fits
the largest temperature in a training fold; its null gap was explained as "too few
errors to cross-fit a temperature".
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

import crossent


def _overconfident(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits twice those the labels are drawn from (a fitted T near 2, off the bounds)."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(size=(n, classes)) * 1.5
    p = softmax(true_logits, axis=1)
    labels = (p.cumsum(axis=1) < rng.uniform(size=(n, 1))).sum(axis=1)
    return 2.0 * true_logits, np.minimum(labels, classes - 1).astype(np.int64)


def _quantile_error(conf: np.ndarray, hits: np.ndarray, bins: int, closed: str) -> float:
    """L1 error, edges at numpy.quantile of the confidences (outer edges 0 and 1)."""
    edges = np.quantile(conf, np.linspace(0.0, 1.0, bins + 1))
    side = "right" if closed == "left" else "left"
    index = np.searchsorted(edges[1:-1], conf, side=side)
    total = 0.0
    for b in range(bins):
        inside = index == b
        if inside.any():
            total += inside.mean() * abs(hits[inside].mean() - conf[inside].mean())
    return total


def _scaled_temperature(logits: np.ndarray, labels: np.ndarray, **options: object) -> tuple:
    result = crossent.report(logits, labels, form="logits", resamples=10, **options).to_dict()
    temperature = result["temperature"]
    assert not temperature["at_bound"], temperature
    return temperature["value"], temperature["ece"]


@pytest.mark.parametrize("closed", ["left", "right"])
@pytest.mark.parametrize("bins", [15, 10, 4])
def test_top_label_quantile_ece_at_temperature_is_the_exact_quantile_error(
    bins: int, closed: str
) -> None:
    logits, labels = _overconfident(500, 3, seed=bins)
    temperature, ece = _scaled_temperature(
        logits, labels, binning="quantile", bins=bins, closed=closed
    )
    scaled = softmax(logits / temperature, axis=1)
    hits = (scaled.argmax(axis=1) == labels).astype(float)
    expected = _quantile_error(scaled.max(axis=1), hits, bins, closed)
    assert ece == pytest.approx(expected, rel=1e-9, abs=1e-13)


@pytest.mark.parametrize("closed", ["left", "right"])
@pytest.mark.parametrize("bins", [15, 10, 6])
def test_binary_quantile_ece_at_temperature_is_the_exact_quantile_error(
    bins: int, closed: str
) -> None:
    # a 1-D P(y = 1) as log-odds: the report's positive-class scope
    logits, labels = _overconfident(500, 2, seed=20 + bins)
    log_odds = logits[:, 1] - logits[:, 0]
    temperature, ece = _scaled_temperature(
        log_odds, labels, binning="quantile", bins=bins, closed=closed
    )
    p1 = softmax(logits / temperature, axis=1)[:, 1]
    expected = _quantile_error(p1, labels.astype(float), bins, closed)
    assert ece == pytest.approx(expected, rel=1e-9, abs=1e-13)


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_class_wise_quantile_ece_at_temperature_follows_calibration_error(norm: str) -> None:
    logits, labels = _overconfident(600, 4, seed=7)
    temperature, ece = _scaled_temperature(
        logits, labels, binning="quantile", bins=8, scope="class-wise", norm=norm
    )
    scaled = softmax(logits / temperature, axis=1)
    expected = crossent.calibration_error(
        scaled, labels, binning="quantile", bins=8, scope="class-wise", norm=norm
    ).value
    assert ece == pytest.approx(expected, rel=1e-9, abs=1e-13)
    if norm == "l1":  # the definition, class by class, by NumPy
        per_class = [
            _quantile_error(scaled[:, k], (labels == k).astype(float), 8, "left") for k in range(4)
        ]
        assert ece == pytest.approx(np.mean(per_class), rel=1e-9)


def test_gap_note_of_uninformative_predictions_does_not_blame_too_few_errors() -> None:
    # predictions drawn apart from the labels: most rows are misses, and a training
    # fold's NLL keeps falling as T grows (the fit at the bound 20)
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(400, 4)) * 2
    labels = rng.integers(0, 4, size=400)
    payload = crossent.report(logits, labels, form="logits", resamples=10).to_dict()
    assert payload["temperature"]["value"] == 20.0
    assert payload["accuracy"] < 0.3  # about 300 misses
    assert payload["recalibration_gap_nats"] is None
    (note,) = [n for n in payload["notes"] if n.startswith("recalibration gap not reported")]
    assert "too few errors" not in note
    assert "tell next to nothing about the labels" in note
    assert "grows to the bound 20.0" in note


@pytest.mark.parametrize(
    ("scope", "classes"), [("top-label", 3), ("class-wise", 3), ("positive-class", 2)]
)
def test_report_summary_calibration_is_the_reports_quantile_error(scope: str, classes: int) -> None:
    # Report.summary.calibration carried the streaming state's fine-cell bins under the
    # same "equal-mass bins" definition: 0.0955 beside the report's printed 0.1012
    logits, labels = _overconfident(500, classes, seed=30 + classes)
    result = crossent.report(
        logits, labels, form="logits", binning="quantile", scope=scope, resamples=10
    )
    direct = crossent.calibration_error(
        logits, labels, form="logits", binning="quantile", scope=scope
    )
    calibration = result.summary.calibration
    assert calibration.value == pytest.approx(direct.value, rel=1e-12, abs=1e-15)
    assert calibration.value == pytest.approx(result.to_dict()["ece"]["value"], rel=1e-12)
    np.testing.assert_array_equal(calibration.statistics.count, direct.statistics.count)
    np.testing.assert_allclose(calibration.edges, direct.edges, rtol=0, atol=0)
    if scope != "class-wise":  # the definition by NumPy: edges at numpy.quantile
        scaled = softmax(logits, axis=1)
        if scope == "top-label":
            conf = scaled.max(axis=1)
            hits = (scaled.argmax(axis=1) == labels).astype(float)
        else:
            conf, hits = scaled[:, 1], labels.astype(float)
        expected = _quantile_error(conf, hits, 15, "left")
        assert calibration.value == pytest.approx(expected, rel=1e-9)
