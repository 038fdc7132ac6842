"""Issue 13 hostile pass over the bootstrap intervals' options; each test fails on main
(fa36995).

* ``bootstrap_interval(metric, ..., base=2)`` for a metric other than the NLL returned
  the metric in its own units, the base silently ignored (while the calibration-error
  options are refused for other metrics);
* ``confidence=0`` was refused as "must be in (0, 1]", a range that holds 1, which is
  refused too (as "must be in (0, 1)");
* a NumPy integer ``seed`` was recorded as given in the ``Interval`` and
  ``LogLossComparison``, so ``crossent.report(..., seed=np.int64(7)).to_dict()`` was not
  JSON ("Object of type int64 is not JSON serializable").
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import crossent

_PROBS = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.55, 0.45]])
_LABELS = np.array([0, 1, 1, 0])


@pytest.mark.parametrize("metric", ["brier", "spherical", "accuracy", "calibration_error"])
def test_base_is_refused_for_a_metric_without_a_logarithm(metric: str) -> None:
    with pytest.raises(
        crossent.InputError, match=rf"`base` applies to metric='nll' only.*{metric}"
    ):
        crossent.bootstrap_interval(metric, _PROBS, _LABELS, base=2, resamples=10)


def test_base_of_the_nll_is_the_nll_over_log_base() -> None:
    nats = crossent.bootstrap_interval("nll", _PROBS, _LABELS, resamples=50)
    bits = crossent.bootstrap_interval("nll", _PROBS, _LABELS, resamples=50, base=2)
    expected = -np.mean(np.log(_PROBS[np.arange(4), _LABELS])) / np.log(2)
    assert bits.value == pytest.approx(expected, rel=1e-15)
    assert (bits.low, bits.high) == pytest.approx((nats.low / np.log(2), nats.high / np.log(2)))


@pytest.mark.parametrize("confidence", [0, 0.0, 1, 1.0, -0.5, 1.5, float("nan"), float("inf")])
@pytest.mark.parametrize(
    "interval",
    [
        lambda c: crossent.bootstrap_interval("nll", _PROBS, _LABELS, confidence=c),
        lambda c: crossent.compare_log_loss(_PROBS, _PROBS[::-1], _LABELS, confidence=c),
    ],
    ids=["bootstrap_interval", "compare_log_loss"],
)
def test_confidence_outside_the_open_unit_interval_says_so(
    interval: object, confidence: float
) -> None:
    with pytest.raises(crossent.InputError, match=r"`confidence` must be in \(0, 1\); got"):
        interval(confidence)  # type: ignore[operator]


@pytest.mark.parametrize("seed", [np.int64(3), np.uint8(3)])
@pytest.mark.parametrize(
    "interval",
    [
        lambda s: crossent.bootstrap_interval("nll", _PROBS, _LABELS, resamples=5, seed=s),
        lambda s: crossent.bootstrap_interval(
            "calibration_error", _PROBS, _LABELS, resamples=5, seed=s
        ),
        lambda s: crossent.compare_log_loss(_PROBS, _PROBS[::-1], _LABELS, resamples=5, seed=s),
    ],
    ids=["nll", "calibration_error", "compare_log_loss"],
)
def test_a_numpy_seed_is_recorded_as_a_python_int(interval: object, seed: object) -> None:
    """Main recorded the NumPy integer as given (so the report's JSON failed, below)."""
    result = interval(seed)  # type: ignore[operator]
    assert type(result.seed) is int
    assert result.seed == 3


def test_report_with_a_numpy_seed_is_json() -> None:
    """Main: ``TypeError: Object of type int64 is not JSON serializable``."""
    rng = np.random.default_rng(0)
    probs, labels = rng.dirichlet(np.ones(3), 20), np.arange(20) % 3
    payload = crossent.report(probs, labels, resamples=3, seed=np.int64(7)).to_dict()
    assert json.loads(json.dumps(payload))["ece"]["seed"] == 7
