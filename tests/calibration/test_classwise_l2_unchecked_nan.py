"""An unchecked NaN probability keeps the class-wise L2 error NaN (mutation pass 7).

``error_from_statistics`` clips each class's debiased square at 0 with
``np.maximum``, which keeps a NaN; ``np.fmax`` (or Python's ``max`` in the other
order) would have turned the NaN class into an error of 0 and reported a number
for data that holds a NaN. Guards the mutant ``np.maximum`` -> ``np.fmax``.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent

# two NaN rows: one bin of two examples (a bin of one contributes 0 when debiased)
PROBS = np.array([[0.2, 0.8], [np.nan, 0.5], [np.nan, 0.5], [0.6, 0.4], [0.3, 0.7], [0.35, 0.65]])
LABELS = np.array([1, 0, 1, 0, 1, 1])


@pytest.mark.parametrize("debias", [False, True])
def test_class_wise_l2_of_an_unchecked_nan_is_nan(debias: bool) -> None:
    result = crossent.calibration_error(
        PROBS, LABELS, scope="class-wise", norm="l2", debias=debias, bins=5, validate=False
    )
    assert np.isnan(result.value)
