"""Issue 13, evaluation item: the most surprising rows' surprisals use the kernels'
logarithm, as the summed and per-class surprisals do.

``EvaluationState.update`` (Numba kernel) sums :math:`-\\log p_y` with the kernels'
fdlibm logarithm (``_row_kernels_numba.log_positive``, within 1 ulp) but formed the
most surprising rows' surprisals from their :math:`p_y` with NumPy's ``np.log``: the two
could differ in the last bit, so a row's reported surprisal was not the one in its
class's sum.  Both now come from the same function (``_row_kernels.surprisal``).  The
test picks label probabilities where the two logarithms differ (checked first), gives
each row its own class, and asks that each reported surprisal be exactly its class's
mean surprisal (one row each).  Checked against the mutant: the NumPy logarithm back
in ``_summaries._fused_totals`` fails it.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent.calibration import _row_kernels

pytestmark = pytest.mark.skipif(not _row_kernels.available(), reason="needs Numba")


def _differing_probabilities(count: int) -> np.ndarray:
    """float32 values in (0.05, 0.5) whose kernel and NumPy logarithms differ."""
    rng = np.random.default_rng(1313)
    p = rng.uniform(0.05, 0.5, 200_000).astype(np.float32).astype(np.float64)
    differ = p[_row_kernels.log_positive(p) != np.log(p)]
    assert differ.size >= count  # about 0.3% of the values
    return differ[:count]


def test_issue13_most_surprising_rows_have_their_class_sums_surprisal() -> None:
    classes = 12
    p = _differing_probabilities(classes)
    probs = np.empty((classes, classes), dtype=np.float32)
    for row in range(classes):  # row i: label i with p[i], the rest spread evenly
        probs[row] = (1.0 - p[row]) / (classes - 1)
        probs[row, row] = p[row]
    labels = np.arange(classes)
    summary = crossent.EvaluationState(classes, keep=classes).update(probs, labels).compute()
    assert summary.per_class_count.tolist() == [1] * classes
    reported = dict(summary.most_surprising)
    assert sorted(reported) == list(range(classes))
    for row, value in reported.items():
        assert value == summary.per_class_nll[row], (row, value, summary.per_class_nll[row])
        assert value == -_row_kernels.log_positive(p[row : row + 1])[0]
    # the NumPy logarithm would have reported other bits for these rows
    assert any(value != -np.log(p[row]) for row, value in reported.items())


def test_issue13_surprisal_of_special_values() -> None:
    x = np.array([0.0, np.inf, np.nan, -0.5, 1.0, 0.25, 5e-324, 2.0])
    got = _row_kernels.surprisal(x)
    assert got[0] == np.inf
    assert got[1] == -np.inf
    assert np.isnan(got[2])
    assert np.isnan(got[3])
    positive = x[4:]
    np.testing.assert_array_equal(got[4:], -_row_kernels.log_positive(positive))
    assert got[4] == 0.0
