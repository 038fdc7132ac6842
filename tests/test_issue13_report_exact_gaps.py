"""Issue 13, stop 63 (branch report3): the report's remaining gaps.

* A perfectly calibrated input (constant confidence 0.7, exactly 70 % right in its bin)
  has calibration error exactly 0: main gave 1.1e-16 (10 rows) to 6.4e-15 (1000 rows),
  the mean confidence of a bin formed from a rounded sum (10 x 0.7 = 6.999999999999999).
  Oracle: the definition itself, |h/n - c| = |0.7 - 0.7| = 0 when ``fl(7/10) == 0.7``.
* Elsewhere (random data) the values are main's, bit for bit: only a bin whose gap is
  within the rounding bound of its sum is computed again.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent


def _perfect(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows (0.7, 0.3) (0.7 + 0.3 == 1.0 in float64; 1 - 0.7 is 0.30000000000000004),
    label 0 in 7 rows of 10: each class's confidence is its hit rate, fl(7/10) == 0.7
    and fl(3/10) == 0.3."""
    probs = np.empty((n, 2))
    probs[:, 0], probs[:, 1] = 0.7, 0.3
    return probs, (np.arange(n) % 10 >= 7).astype(int)


@pytest.mark.parametrize("n", [10, 1000])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"binning": "quantile"},
        {"scope": "class-wise"},
        {"scope": "positive-class"},
        {"norm": "max"},
        {"norm": "l2"},
    ],
)
def test_perfectly_calibrated_input_has_error_zero(n: int, options: dict) -> None:
    probs, labels = _perfect(n)
    assert crossent.calibration_error(probs, labels, **options).value == 0.0


def test_perfect_report_and_interval_value_are_zero() -> None:
    probs, labels = _perfect(1000)
    for options in ({}, {"scope": "class-wise"}):
        report = crossent.report(probs, labels, resamples=3, **options)
        assert report.to_dict()["ece"]["value"] == 0.0
        assert report.summary.calibration.value == 0.0
    interval = crossent.bootstrap_interval("calibration_error", probs, labels, resamples=3)
    assert interval.value == 0.0


def test_refined_mean_of_constant_confidences_is_that_confidence() -> None:
    from crossent.calibration._binning import bin_statistics, refined_means

    for c in (0.7, 0.1, 1 / 3, 0.9999999):
        confidence = np.full(1234, c)
        index = np.zeros(1234, dtype=np.intp)
        stats = bin_statistics(index, confidence, np.zeros(1234), 1)
        mean = refined_means(stats, index, confidence, np.array([True]))
        assert mean is not None
        assert mean[0] == c


def test_random_data_is_not_doubtful_and_keeps_its_bits() -> None:
    """Guard (kills "refine every bin": the two-pass mean moves some bins by an ulp):
    on random data no bin is doubtful and the value is the sums' formula."""
    from crossent.calibration._binning import doubtful_bins

    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(5), size=4000)
    labels = rng.integers(0, 5, size=4000)
    result = crossent.calibration_error(probs, labels, binning="quantile")
    stats = result.statistics
    assert not doubtful_bins(stats).any()
    n = stats.count[stats.count > 0]
    gap = stats.hits[stats.count > 0] / n - stats.confidence_sum[stats.count > 0] / n
    assert result.value == float(np.sum(n * np.abs(gap)) / stats.count.sum())


@pytest.mark.parametrize(
    ("rows", "classes", "bins", "options"),
    [
        (120, 3, 15, {}),
        (150, 6, 400, {"norm": "l2"}),
        (150, 4, 40, {"norm": "l2", "debias": True}),
        (100, 5, 25, {"norm": "max", "closed": "right"}),
        (160, 4, 12, {"binning": "quantile"}),
    ],
)
def test_classwise_replicates_are_the_dense_cells_bits(rows, classes, bins, options) -> None:
    """The class-wise bootstrap from the occupied cells only: every replicate's value is
    the bits of the dense ``(classes, bins)`` statistics' (the former loop, the oracle),
    the same resamples (guard of the packing: kills a class's cells out of bin order, a
    shared width without zero padding, or sums over the entries in column-major order)."""
    from crossent.calibration._bootstrap import classwise_replicates, resample_counts
    from crossent.calibration._error import (
        bin_indices,
        check_spec,
        edges_for,
        error_from_statistics,
        statistics_for,
    )

    rng = np.random.default_rng(rows + bins)
    probs = rng.dirichlet(np.full(classes, 0.5), size=rows)
    hits = (rng.integers(0, classes, rows)[:, None] == np.arange(classes)).astype(float)
    spec = check_spec(
        bins=bins,
        binning=options.get("binning", "uniform"),
        norm=options.get("norm", "l1"),
        scope="class-wise",
        debias=options.get("debias", False),
        closed=options.get("closed", "left"),
    )
    index = bin_indices(probs, edges_for(probs, spec), spec)
    dense = [
        error_from_statistics(statistics_for(probs, hits, index, spec, w), spec)
        for w in resample_counts(rows, 12, 5)
    ]
    packed = classwise_replicates(probs, hits, index, spec, resample_counts(rows, 12, 5))
    assert packed.tolist() == dense
