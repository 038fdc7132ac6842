"""Issue 11: evaluation inputs are named by their form in messages."""

from __future__ import annotations

import numpy as np
import pytest

import crossent


@pytest.mark.parametrize("form", ["probs", "log_probs", "logits"])
def test_issue11_messages_name_the_array_by_its_form(form: str) -> None:
    values = np.array([[0.5, np.nan], [0.5, 0.5]])
    with pytest.raises(crossent.InputError, match=rf"^`{form}` contains NaN at index \(0, 1\)"):
        crossent.calibration_error(values, [0, 1], form=form)
    with pytest.raises(crossent.InputError, match=rf"^`{form}` contains NaN"):
        crossent.TemperatureScaling().fit(values, [0, 1], form=form)


def test_issue11_a_given_name_is_kept() -> None:
    good = np.full((2, 2), 0.5)
    with pytest.raises(crossent.InputError, match=r"^`probs_b` contains NaN"):
        crossent.compare_log_loss(good, np.array([[0.5, np.nan], [0.5, 0.5]]), [0, 1])
