"""Issue 10: the netcal oracle runs in CI, as netcal's ECE definition written out here.

netcal (``netcal.metrics.ECE``) cannot be a CI dependency: its install pulls in pyro and
gpytorch.  Its classification ECE is short, so it is restated below from netcal's
documentation and ``_Miscalibration._measure`` (netcal 1.2-1.3): the top label
``argmax`` and its confidence ``max_k p_k``, clipped to ``[eps, 1 - eps]`` (float64 eps);
``bins`` equal-width bins ``numpy.linspace(0, 1, bins + 1)`` with ``numpy.histogram``
semantics (``[a, b)``, the last bin closed) through ``scipy.stats.binned_statistic_dd``;
empty bins contribute 0; ECE ``= sum_b (n_b / n) |acc_b - conf_b|``.  Where netcal is
installed, the oracle is also checked against netcal itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binned_statistic_dd

import crossent

from tolerances import SUM, assert_close


def netcal_ece(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """netcal's ``ECE(bins).measure(probs, labels)`` for multiclass ``probs`` (n, classes)."""
    eps = np.finfo(np.float64).eps
    prediction = np.argmax(probs, axis=1)
    confidence = np.clip(np.max(probs, axis=1), eps, 1.0 - eps).reshape(-1, 1)
    matched = (prediction == labels).astype(np.float64)
    edges = [np.linspace(0.0, 1.0, bins + 1)]
    accuracy = binned_statistic_dd(confidence, matched, statistic="mean", bins=edges)[0]
    mean_confidence = binned_statistic_dd(
        confidence, confidence[:, 0], statistic="mean", bins=edges
    )[0]
    counts = np.histogramdd(confidence, bins=edges)[0]
    accuracy, mean_confidence = np.nan_to_num(accuracy), np.nan_to_num(mean_confidence)
    return float(np.sum(np.abs(accuracy - mean_confidence) * counts / confidence.shape[0]))


def _random_multiclass(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 3
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return probs, rng.integers(0, classes, size=n)


def _cases() -> list[tuple[np.ndarray, np.ndarray]]:
    probs, labels = _random_multiclass(3000, 3, seed=1)
    probs[:50] = np.eye(3)[labels[:50]]  # confidences of exactly 1.0
    # confidences exactly on netcal's bin edges (numpy.linspace(0, 1, 11)[5:])
    # mixed with confidences inside the bins, so that the side an edge falls on matters
    rng = np.random.default_rng(5)
    top = np.linspace(0.0, 1.0, 11)[5:][rng.integers(0, 6, size=400)]
    top[::2] = rng.uniform(0.5, 1.0, size=200)
    edge_probs = np.stack([top, 1.0 - top], axis=1)
    # the edge rows all right, the others mostly wrong: gaps of both signs, so the
    # value depends on which bin each edge joins
    edge_labels = np.where(rng.random(400) < 0.3, 0, 1)
    edge_labels[1::2] = 0
    return [(probs, labels), (edge_probs, edge_labels), _random_multiclass(57, 10, seed=3)]


@pytest.mark.parametrize("case", range(3))
def test_issue10_tests_netcal_preset_matches_netcal_definition(case: int) -> None:
    probs, labels = _cases()[case]
    ours = crossent.calibration_error(probs, labels, **crossent.CALIBRATION_PRESETS["netcal"])
    # the clip moves a confidence of 1 by eps: a few 1e-16 in the value
    assert_close(ours.value, netcal_ece(probs, labels), SUM)


def test_issue10_tests_netcal_oracle_agrees_with_netcal_where_installed() -> None:
    netcal_metrics = pytest.importorskip("netcal.metrics")
    for probs, labels in _cases():
        expected = netcal_metrics.ECE(bins=10).measure(probs, labels)
        assert_close(netcal_ece(probs, labels), expected, SUM)
