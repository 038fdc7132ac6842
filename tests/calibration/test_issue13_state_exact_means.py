"""Issue 13, stop 64 (branch evalstate1): exact bin means in the streaming state, the
bootstrap replicates and the reliability diagram.

``calibration_error`` gave exactly 0 for a perfectly calibrated bin (constant confidence
0.7, 70 % right) since report3; ``EvaluationState.compute`` keeps no rows and gave 6.4e-15
for 1000 rows (its bins' means ``fl(S / n)`` of a rounded sum), a perfect bootstrap
replicate 1.1e-16 and the reliability diagram's confidence 0.7000000000000064 (main's
numbers, 13 of 13 tests failing there).  The state's bins now keep the sum
of the rounding errors of each confidence sum (TwoSum, exact), so ``S + E`` is the exact
sum and the doubtful bins' means are correctly rounded.

Oracles: ``fractions.Fraction`` sums of the confidences (exact), ``Fraction`` division
(correctly rounded by ``float``), and the definition |h/n - c| = 0 where fl(7/10) = 0.7.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crossent
from crossent.calibration import _inputs
from crossent.calibration._binning import assign_uniform_bins


def _perfect(n: int, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Rows (0.7, 0.2, 0.1) (or (0.7, 0.3)), label 0 in 7 rows of 10: top-label bin of
    confidence 0.7 with hit rate fl(7/10) == 0.7."""
    row = [0.7, 0.2, 0.1] if classes == 3 else [0.7, 0.3]
    probs = np.tile(row, (n, 1))
    return probs, np.where(np.arange(n) % 10 < 7, 0, 1)


def _exact_sums(confidence: np.ndarray, bins: int = 15) -> list[Fraction]:
    index = assign_uniform_bins(confidence, bins, "left")
    return [sum(map(Fraction, confidence[index == b].tolist()), Fraction(0)) for b in range(bins)]


@pytest.mark.parametrize("blocks", [1, 4])  # one kernel call; the stacked blocks
@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_state_of_perfect_bin_is_zero(monkeypatch, blocks: int, norm: str) -> None:
    monkeypatch.setattr(_inputs, "_BLOCK_ELEMENTS", 3 * 250 if blocks > 1 else 1 << 20)
    probs, labels = _perfect(1000)
    state = crossent.EvaluationState(3).update(probs, labels)
    value = state.compute(norm=norm).calibration.value
    assert value == 0.0
    assert value == crossent.calibration_error(probs, labels, norm=norm).value


def test_merged_perfect_states_are_zero() -> None:
    probs, labels = _perfect(1000)
    left = crossent.EvaluationState(3).update(probs[:333], labels[:333])
    right = crossent.EvaluationState(3).update(probs[333:], labels[333:], first_row=333)
    assert left.merge(right).calibration().value == 0.0
    assert right.merge(left).calibration().value == 0.0


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    cuts=st.lists(st.integers(1, 299), max_size=3, unique=True),
)
def test_state_sums_are_exact_and_merge_order_free(seed: int, cuts: list[int]) -> None:
    """``S + E`` of every bin is the Fraction sum of its confidences, for any split of
    the rows merged in any order; a doubtful bin's mean (the perfectly calibrated one)
    is that sum over its count, correctly rounded, and its gap 0; one update's value
    has calibration_error's bits (the same sums)."""
    from crossent.calibration._binning import doubtful_bins
    from crossent.calibration._error import exact_means

    rng = np.random.default_rng(seed)
    n = 300
    probs = rng.dirichlet(np.full(4, 0.3), size=n)
    top = probs.max(axis=1)
    probs[(top >= 2 / 3) & (top < 11 / 15)] = [0.4, 0.3, 0.2, 0.1]  # (bin 10: 0.7's only)
    probs[: n // 3] = [0.7, 0.1, 0.1, 0.1]  # a perfectly calibrated bin among others
    labels = rng.integers(0, 4, size=n)
    labels[: n // 3] = np.where(np.arange(n // 3) % 10 < 7, 0, 1)
    order = rng.permutation(n)
    probs, labels = probs[order], labels[order]
    bounds = [0, *sorted(cuts), n]
    parts = [
        crossent.EvaluationState(4).update(probs[a:b], labels[a:b], first_row=a)
        for a, b in itertools.pairwise(bounds)
    ]
    first, *rest = rng.permutation(len(parts)).tolist()
    merged = parts[first]
    for i in rest:
        merged = merged.merge(parts[i])
    stats = merged.calibration().statistics
    exact = _exact_sums(probs.max(axis=1))
    kept = [
        Fraction(s) + Fraction(e) for s, e in zip(stats.confidence_sum, stats.error, strict=True)
    ]
    assert kept == exact
    doubtful = doubtful_bins(stats)
    assert doubtful[10]  # the bin [10/15, 11/15) of 0.7
    mean = exact_means(stats, None, None)
    for b in np.flatnonzero(doubtful):
        assert mean[b] == float(exact[b] / int(stats.count[b]))
    assert mean[10] == 0.7 == stats.hits[10] / stats.count[10]
    whole = crossent.EvaluationState(4).update(probs, labels).calibration().value
    assert whole == crossent.calibration_error(probs, labels).value


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(1, 2**40),
    mean=st.floats(0.01, 1.0),
    error=st.floats(-1.0, 1.0),
)
def test_compensated_mean_is_correctly_rounded(count: int, mean: float, error: float) -> None:
    from crossent.calibration._binning import BinStatistics, compensated_means

    total = float(count) * mean
    e = error * np.spacing(total) * 4  # a double-double sum S + E
    stats = BinStatistics(
        np.array([float(count)]), np.array([total]), np.array([0.0]), np.array([e])
    )
    got = compensated_means(stats, np.array([True]))[0]
    assert got == float((Fraction(total) + Fraction(e)) / count)


def test_bootstrap_replicates_of_perfect_resamples_are_zero() -> None:
    """20 rows (0.7, 0.3), 14 right: a resample with 14 hits again is perfectly
    calibrated (gap exactly 0; main: 1.1e-16), some 19 % of them, so the 2.5 % percentile
    is 0."""
    probs, labels = _perfect(20, classes=2)
    for options in ({}, {"scope": "class-wise"}, {"binning": "quantile"}):
        interval = crossent.bootstrap_interval(
            "calibration_error", probs, labels, resamples=40, seed=1, **options
        )
        assert (interval.value, interval.low) == (0.0, 0.0), options


def test_report_interval_of_perfect_resamples_is_zero() -> None:
    probs, labels = _perfect(20, classes=2)
    ece = crossent.report(probs, labels, resamples=40).to_dict()["ece"]
    assert (ece["value"], ece["ci_low"]) == (0.0, 0.0)


@pytest.mark.parametrize("binning", ["uniform", "quantile"])
def test_diagram_confidence_of_perfect_bin_is_its_accuracy(binning: str) -> None:
    probs, labels = _perfect(1000)
    diagram = crossent.reliability_diagram(probs, labels, binning=binning)
    occupied = diagram.count > 0
    assert diagram.confidence[occupied].tolist() == [0.7]
    assert diagram.accuracy[occupied].tolist() == [0.7]
