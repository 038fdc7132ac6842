"""Issue 13 hostile pass: a fitted recalibrator's ``transform`` checks the class count.

On main (fa36995) ``PlattScaling.transform`` of three-class logits used ``z_1 - z_0`` and
dropped the third class without a word (a distribution from the wrong model), and of one
class raised NumPy's ``IndexError``; ``VectorScaling.transform`` of the wrong class count
raised NumPy's broadcasting ``ValueError``.  ``HistogramBinning`` already named the count.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, softmax

import crossent


def _data(classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(13)
    logits = rng.normal(size=(80, classes)) * 2
    labels = np.array([rng.choice(classes, p=row) for row in softmax(logits, axis=1)])
    return logits, labels


@pytest.mark.parametrize("columns", [1, 3, 4])
def test_platt_transform_refuses_other_than_two_classes(columns: int) -> None:
    platt = crossent.PlattScaling().fit(*_data(2))
    with pytest.raises(crossent.InputError, match=rf"`logits` has {columns} classes.*fitted on 2"):
        platt.transform(np.zeros((3, columns)))


@pytest.mark.parametrize("columns", [2, 4])
def test_vector_scaling_transform_refuses_another_class_count(columns: int) -> None:
    vector = crossent.VectorScaling().fit(*_data(3))
    with pytest.raises(crossent.InputError, match=rf"`logits` has {columns} classes.*fitted on 3"):
        vector.transform(np.zeros((3, columns)))


def test_vector_scaling_transform_names_the_form() -> None:
    logits, labels = _data(3)
    vector = crossent.VectorScaling().fit(logits, labels)
    with pytest.raises(crossent.InputError, match=r"`log_probs` has 2 classes.*fitted on 3"):
        vector.transform(np.log(np.full((1, 2), 0.5)), form="log_probs")


def test_transform_of_the_fitted_class_count_is_unchanged() -> None:
    """The check keeps the values: Platt is sigma(a s + b) of s = z_1 - z_0 (also for the
    1-D log-odds of class 1), vector scaling softmax(w z + b)."""
    logits, labels = _data(2)
    platt = crossent.PlattScaling().fit(logits, labels)
    p1 = expit(platt.slope_ * (logits[:, 1] - logits[:, 0]) + platt.intercept_)
    np.testing.assert_allclose(platt.transform(logits)[:, 1], p1, rtol=1e-13)
    log_odds = logits[:, 1] - logits[:, 0]
    np.testing.assert_allclose(platt.transform(log_odds)[:, 1], p1, rtol=1e-13)
    logits3, labels3 = _data(3)
    vector = crossent.VectorScaling().fit(logits3, labels3)
    expected = softmax(logits3 * vector.scale_ + vector.bias_, axis=1)
    np.testing.assert_allclose(vector.transform(logits3), expected, rtol=1e-13)
