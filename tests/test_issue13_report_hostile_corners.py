"""Issue 13 hostile pass over ``crossent.report`` and ``crossent.compare_reports``: each
test pins a defect found by attacking them and fails on main (fa36995).

* ``report`` of no rows said "the state has seen no examples; call update() first", a
  message about an object the caller never made, naming no argument;
* ``compare_reports`` of something that is not a ``Report`` raised ``AttributeError``
  ("'int' object has no attribute 'payload'").
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent


@pytest.mark.parametrize("classes", [1, 3])
def test_report_of_no_rows_names_predictions(classes: int) -> None:
    with pytest.raises(crossent.InputError, match=r"`predictions` has 0 rows"):
        crossent.report(np.zeros((0, classes)), np.zeros(0, np.int64))


def test_report_of_no_binary_rows_names_predictions() -> None:
    with pytest.raises(crossent.InputError, match=r"`predictions` has 0 rows"):
        crossent.report(np.zeros(0), np.zeros(0, np.int64))


def test_report_of_one_row_is_its_nll() -> None:
    """One row is enough: the NLL is -log p_y (SciPy-free closed form)."""
    result = crossent.report(np.array([[0.25, 0.75]]), np.array([1]), resamples=5).to_dict()
    assert result["n"] == 1
    assert result["nll_nats"] == pytest.approx(-np.log(0.75), rel=1e-15)
