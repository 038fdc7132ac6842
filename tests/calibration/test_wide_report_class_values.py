"""Per-class calibration values side by side (``crossent report`` on 50 000 classes).

``squared_or_values`` and ``calibration_values`` compute the classes with one nonempty
bin together; every row must equal, bit for bit, the scalar ``squared_or_value`` /
``calibration_value`` of that row (the definition, one class at a time).
"""

from __future__ import annotations

import numpy as np
import pytest

from crossent.calibration._binning import (
    BinStatistics,
    calibration_value,
    calibration_values,
    squared_or_value,
    squared_or_values,
)


def _statistics(classes: int = 4000, bins: int = 15, seed: int = 0) -> BinStatistics:
    """Rows with no example, one nonempty bin (count 1 included: the debiased variance
    divides by 0), two and all bins nonempty; hits up to the count, sums inside it."""
    rng = np.random.default_rng(seed)
    count = rng.integers(1, 400, size=(classes, bins)).astype(np.float64)
    occupied = rng.integers(0, 4, size=classes)  # 0: none, 1: one bin, 2: two, 3: all
    keep = np.zeros((classes, bins), dtype=bool)
    first = rng.integers(0, bins, size=classes)
    keep[np.arange(classes), first] = occupied >= 1
    keep[np.arange(classes), (first + 7) % bins] |= occupied == 2
    keep[occupied == 3] = True
    count = np.where(keep, count, 0.0)
    count[::17] = np.where(keep[::17], 1.0, 0.0)
    hits = np.floor(count * rng.random((classes, bins)))
    confidence_sum = count * rng.random((classes, bins))
    return BinStatistics(count, confidence_sum, hits)


@pytest.mark.parametrize(
    ("norm", "debias"), [("l1", False), ("max", False), ("l2", False), ("l2", True)]
)
def test_each_class_value_is_the_scalar_one_bit_for_bit(norm: str, debias: bool) -> None:
    stats = _statistics()
    rows = range(stats.count.shape[0])
    expected = np.array([squared_or_value(stats.row(k), norm=norm, debias=debias) for k in rows])
    got = squared_or_values(stats, norm=norm, debias=debias)  # type: ignore[arg-type]
    np.testing.assert_array_equal(got.view(np.uint64), expected.view(np.uint64))
    expected = np.array([calibration_value(stats.row(k), norm=norm, debias=debias) for k in rows])
    got = calibration_values(stats, norm=norm, debias=debias)  # type: ignore[arg-type]
    np.testing.assert_array_equal(got.view(np.uint64), expected.view(np.uint64))
