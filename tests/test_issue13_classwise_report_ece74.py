"""Issue 13 (stop 74, branch platt2): the report's class-wise ``summary.calibration`` is
``calibration_error``'s number, as ``to_dict()["ece"]`` is.

Main took ``summary.calibration`` from the class-wise ``EvaluationState``, whose bins
are summed batch by batch (2^15 rows), where ``calibration_error`` and the report's
interval bin all rows at once: 40 000 rows of 3 classes gave 0.2841550789845013 against
0.28415507898450143 (L1, 15 bins); 6 of 18 cases of
``benchmarks/check_classwise_report_ece.py`` differed, up to 1.8e-15 relative.  Now both
come from one binning (``_bootstrap.classwise_calibration_interval``), no third pass.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent


@pytest.fixture(scope="module")
def rows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(3, 0.3), size=40_000)
    return probs, rng.integers(0, 3, 40_000)


@pytest.mark.parametrize(("norm", "bins"), [("l1", 15), ("l2", 7), ("max", 15)])
def test_the_classwise_summary_is_calibration_error(
    rows: tuple[np.ndarray, np.ndarray], norm: str, bins: int
) -> None:
    probs, labels = rows
    options = {"scope": "class-wise", "norm": norm, "bins": bins}
    report = crossent.report(probs, labels, resamples=1, **options)
    want = crossent.calibration_error(probs, labels, **options)
    assert report.summary.calibration.value == want.value
    assert report.to_dict()["ece"]["value"] == want.value
    np.testing.assert_array_equal(
        report.summary.calibration.statistics.count, want.statistics.count
    )
    np.testing.assert_array_equal(report.summary.calibration.edges, want.edges)
