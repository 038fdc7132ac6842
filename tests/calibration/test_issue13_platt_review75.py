"""Issue 13 (stop 75, branch platt3): a second reading of platt2's Platt refit and its
class-wise interval.

* A row far on the wrong side of its label: the refit (``_PlattNewton``) took 32 slope
  evaluations on 40 rows (49 on 10^5, 4.7-14 s of CPU on 10^6), after an L-BFGS-B run
  that could not reach the optimum; now a row 2^32 times the median log-odds goes to
  the refit alone, which takes a dozen slopes or fewer.  (Its optimum: the tests of
  ``test_issue13_platt_wrong_side74.py``, against mpmath.)
* ``fit(..., validate=False)`` with a NaN or +inf logit said "a probability of 0
  (log-score -inf)", and no message named the entry: now the argument, the index and
  the value given.
* ``bootstrap_interval("calibration_error", scope="class-wise")`` read its
  ``(n, classes)`` confidences and hits twice (``scope_arrays`` before
  ``classwise_calibration_interval``, which read them again).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import crossent
from crossent.calibration import _bootstrap, _error, _recalibrators
from crossent.errors import InputError


def _far_rows(far: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    logits, labels = rng.normal(size=(40, 2)), rng.integers(0, 2, 40)
    logits[0] = (far, -far) if labels[0] == 1 else (-far, far)  # the wrong side
    return logits, labels


@pytest.mark.parametrize("far", [1e10, 1.7e308])
def test_a_far_row_is_fitted_by_the_refit_alone_in_few_slopes(
    far: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_lbfgs(*args: object, **kwargs: object) -> None:
        raise AssertionError("L-BFGS-B ran: its point is not the optimum here")

    slopes = []
    original = _recalibrators._PlattNewton._intercept

    def counted(self: object, *args: float) -> object:
        slopes.append(args[0])
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(_recalibrators, "_minimise", no_lbfgs)
    monkeypatch.setattr(_recalibrators._PlattNewton, "_intercept", counted)
    fitted = crossent.PlattScaling().fit(*_far_rows(far))
    assert fitted.converged_
    assert len(slopes) <= 12, len(slopes)  # main: 32 after L-BFGS-B


def test_an_ordinary_fit_still_takes_l_bfgs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard (passes on main): log-odds within 2^32 of their median keep L-BFGS-B's
    polished point, main's bits."""
    runs = []
    original = _recalibrators._minimise

    def counted(*args: object, **kwargs: object) -> object:
        runs.append(1)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_recalibrators, "_minimise", counted)
    fitted = crossent.PlattScaling().fit(*_far_rows(1e8))
    assert fitted.converged_
    assert runs == [1]


@pytest.mark.parametrize(
    ("learner", "value"),
    [
        (crossent.PlattScaling, math.nan),
        (crossent.PlattScaling, math.inf),
        (crossent.VectorScaling, math.nan),
    ],
)
def test_a_nan_or_inf_logit_unchecked_is_named(learner: type, value: float) -> None:
    logits = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, value]])
    with pytest.raises(InputError) as raised:
        learner().fit(logits, np.array([0, 1, 1]), validate=False)
    message = str(raised.value)
    assert "`logits`" in message
    assert "(2, 1)" in message
    assert str(value) in message
    assert "probability of 0" not in message


def test_a_probability_of_0_is_named_by_its_index() -> None:
    probs = np.array([[0.5, 0.5], [0.0, 1.0], [1.0, 0.0]])
    with pytest.raises(InputError, match=r"`logits` \(probs\) has 0\.0 at index \(1, 0\)"):
        crossent.PlattScaling().fit(probs, np.array([0, 1, 1]), form="probs")


def test_the_classwise_interval_reads_its_entries_once(monkeypatch: pytest.MonkeyPatch) -> None:
    reads = []
    original = _error.scope_arrays

    def counted(*args: object) -> object:
        reads.append(args[1])
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(_error, "scope_arrays", counted)
    monkeypatch.setattr(_bootstrap, "scope_arrays", counted)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=60)
    labels = rng.integers(0, 3, 60)
    interval = crossent.bootstrap_interval(
        "calibration_error", probs, labels, scope="class-wise", bins=5, resamples=20
    )
    assert reads == ["class-wise"]
    assert (
        interval.value
        == crossent.calibration_error(probs, labels, scope="class-wise", bins=5).value
    )


@mpmath.workdps(60)
def _slope_imbalance(log_odds: np.ndarray, labels: np.ndarray, slope: float, b: float) -> float:
    """The exact slope gradient of the NLL relative to the sum of its terms' sizes."""
    total = size = mpmath.mpf(0)
    for s, y in zip(log_odds, labels, strict=True):
        t = mpmath.mpf(slope) * mpmath.mpf(float(s)) + mpmath.mpf(b)
        r = -1 / (1 + mpmath.exp(t)) if y == 1 else 1 / (1 + mpmath.exp(-t))
        total += r * mpmath.mpf(float(s))
        size += abs(r * mpmath.mpf(float(s)))
    return float(abs(total) / size)


@pytest.mark.parametrize("tiny", [1e-300, 1e-310])
def test_tiny_log_odds_beside_a_far_row_are_not_lost(tiny: float) -> None:
    """Log-odds of 1e-300 (or subnormal 1e-310) beside a row of 1e300 on the wrong
    side: platt2's scale (every (c s)^2 n below 2^1000: c = 2^-497) took them to 0,
    and main's fit ignored them: slope -2.0e-297 for both, ``converged_`` True; the
    optima are -1.381e-297 and -1.404e-297."""
    rng = np.random.default_rng(1)
    log_odds = np.r_[rng.normal(size=20) * tiny, 1e300]
    labels = np.r_[rng.integers(0, 2, 20), 0]
    logits = np.stack([np.zeros_like(log_odds), log_odds], axis=1)
    fitted = crossent.PlattScaling().fit(logits, labels)
    assert fitted.converged_
    imbalance = _slope_imbalance(log_odds, labels, fitted.slope_, fitted.intercept_)
    assert imbalance <= 1e-12, imbalance


def test_a_slope_past_float64_is_not_converged() -> None:
    """Rows of log-odds +-1e-310 whose own fit's slope is -log(3) / 1e-310 (past
    float64) beside a far row: no finite optimum; the fit stays finite and says so."""
    tiny = 1e-310
    log_odds = np.array([tiny] * 4 + [-tiny] * 4 + [1e300])
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 0, 0])
    logits = np.stack([np.zeros_like(log_odds), log_odds], axis=1)
    fitted = crossent.PlattScaling().fit(logits, labels)
    assert not fitted.separated_
    assert not fitted.converged_
    assert math.isfinite(fitted.slope_)
    assert math.isfinite(fitted.intercept_)
