"""The report's calibration error at the fitted temperature follows the report's definition.

``report(...).to_dict()["temperature"]["ece"]`` is computed by a shortcut (one pass over
the log-scores for a one-curve scope, without the full softmax; the class-wise scope
rescales every column).  These tests check it, for every scope, norm and estimator,
against the same definition applied to ``softmax(z / T)`` formed explicitly in float64
by SciPy, and, for the plug-in top-label errors, against a direct NumPy binning.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

import crossent


def _overconfident(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits twice the ones the labels are drawn from: the fitted T is near 2, inside
    the bounds (so the scaled probabilities differ from the given ones)."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(size=(n, classes)) * 1.5
    p = softmax(true_logits, axis=1)
    labels = (p.cumsum(axis=1) < rng.uniform(size=(n, 1))).sum(axis=1)
    return 2.0 * true_logits, np.minimum(labels, classes - 1)


def _plug_in_top_label(probs: np.ndarray, labels: np.ndarray, bins: int, norm: str) -> float:
    """Top-label binned error, equal-width bins [a, b) with the last closed, by NumPy."""
    confidence = probs.max(axis=1)
    hit = (probs.argmax(axis=1) == labels).astype(float)
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = index == b
        if inside.any():
            gap = abs(hit[inside].mean() - confidence[inside].mean())
            total += inside.mean() * (gap if norm == "l1" else gap**2)
    return total if norm == "l1" else float(np.sqrt(total))


def _report_temperature(
    logits: np.ndarray, labels: np.ndarray, **spec: object
) -> tuple[float, float]:
    result = crossent.report(logits, labels, form="logits", resamples=10, **spec).to_dict()
    temperature = result["temperature"]
    assert not temperature["at_bound"], temperature
    return temperature["value"], temperature["ece"]


_DEFINITIONS = [("l1", False), ("l2", False), ("l2", True)]  # debiasing is for L2 only


@pytest.mark.parametrize(("norm", "debias"), _DEFINITIONS)
@pytest.mark.parametrize(
    ("scope", "classes"), [("top-label", 5), ("class-wise", 5), ("positive-class", 2)]
)
def test_issue13_temperature_ece_follows_the_reports_definition(
    scope: str, classes: int, norm: str, debias: bool
) -> None:
    logits, labels = _overconfident(3000, classes, seed=classes + 10 * len(scope))
    temperature, ece = _report_temperature(
        logits, labels, scope=scope, norm=norm, debias=debias, bins=10
    )
    scaled = softmax(logits / temperature, axis=1)
    expected = crossent.calibration_error(
        scaled, labels, scope=scope, norm=norm, debias=debias, bins=10
    ).value
    assert ece == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # the definition matters on these data: every other one gives another number
    for other_norm, other_debias in _DEFINITIONS:
        if (other_norm, other_debias) != (norm, debias):
            other = crossent.calibration_error(
                scaled, labels, scope=scope, norm=other_norm, debias=other_debias, bins=10
            ).value
            assert abs(other - ece) > 1e-4


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_issue13_temperature_ece_against_numpy_binning(norm: str) -> None:
    logits, labels = _overconfident(4000, 6, seed=3)
    temperature, ece = _report_temperature(logits, labels, norm=norm, debias=False, bins=15)
    expected = _plug_in_top_label(softmax(logits / temperature, axis=1), labels, 15, norm)
    assert ece == pytest.approx(expected, rel=1e-9)
