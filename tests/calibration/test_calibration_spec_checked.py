"""A :class:`crossent.CalibrationSpec` built by hand is held to ``calibration_error``'s
rules: on 0c3b9a7 ``CalibrationSpec(bins=-1, norm="l7")`` built, and its ``definition``
read "L7 calibration error, ..., -1 equal-width bins" (a hostile tester's find)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import crossent


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"bins": -1}, "bins"),
        ({"bins": 0}, "bins"),
        ({"bins": 2.5}, "bins"),
        ({"bins": 2**20 + 1}, "bins"),
        ({"norm": "l7"}, "norm"),
        ({"binning": "log"}, "binning"),
        ({"closed": "both"}, "closed"),
        ({"scope": "top"}, "scope"),
        ({"estimator": "unbiased"}, "estimator"),
        ({"estimator": "debiased", "norm": "l1"}, "debias"),
    ],
)
def test_spec_refuses_what_calibration_error_refuses(
    options: dict[str, object], named: str
) -> None:
    with pytest.raises(crossent.InputError, match=f"`{named}"):
        crossent.CalibrationSpec(**options)  # type: ignore[arg-type]
    with pytest.raises(crossent.InputError, match=f"`{named}"):
        dataclasses.replace(crossent.CalibrationSpec(), **options)


def test_a_valid_spec_is_the_one_calibration_error_declares() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=200)
    labels = rng.integers(0, 4, 200)
    result = crossent.calibration_error(probs, labels, bins=np.int64(10), norm="l2", debias=True)
    spec = crossent.CalibrationSpec(bins=np.int64(10), norm="l2", estimator="debiased")  # type: ignore[arg-type]
    assert type(spec.bins) is int
    assert result.spec == spec
    assert spec.definition == result.spec.definition
