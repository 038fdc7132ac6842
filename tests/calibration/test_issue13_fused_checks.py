"""Issue 13, evaluation speed: the fused pass validates as it reads (the entries of short
rows by one "or" of comparisons over a chunk, ``_row_kernels_numba.entries_suspect``;
long rows in their sums' loop), so each public metric must reject exactly what the
full check (``_inputs.check_values``) rejects, with its message, even where the row's
sum alone would pass: an entry one ulp above 1 beside zeros, a negative subnormal, a
NaN beside values summing to 1, an infinity; and must accept -0.0 and exact 0 and 1.
Rows at the chunks' edges (255, 256: ``_PART_ROWS``), short and long rows (64, 65
classes), float32 and float64."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.calibration._inputs import check_values

pytest.importorskip("numba")

_METRICS: dict[str, Callable[[Any, Any], object]] = {
    "nll": crossent.negative_log_likelihood,
    "brier": crossent.brier_score,
    "ece": crossent.calibration_error,
    "update": lambda p, y: crossent.EvaluationState(p.shape[1]).update(p, y),
}


def _one_hot_rows(rows: int, classes: int, dtype: type) -> np.ndarray:
    probs = np.zeros((rows, classes), dtype=dtype)
    probs[:, 0] = 1.0
    probs[1] = -0.0
    probs[1, classes - 1] = 1.0  # -0.0 entries: accepted
    return probs


def _bad_entries(dtype: type) -> list[tuple[str, float, float]]:
    """(name, the bad entry, the entry beside it): every row still sums to about 1."""
    one = dtype(1.0)
    tiny = np.finfo(dtype).smallest_subnormal
    return [
        ("above one", float(np.nextafter(one, dtype(2.0))), 0.0),
        ("negative subnormal", float(-tiny), 1.0),
        ("nan", float("nan"), 1.0),
        ("inf", float("inf"), 0.0),
        ("minus inf", float("-inf"), 1.0),
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("classes", [2, 10, 64, 65])
@pytest.mark.parametrize("row", [0, 255, 256, 600])
def test_issue13_fused_pass_rejects_what_the_full_check_rejects(
    dtype: type, classes: int, row: int
) -> None:
    labels = np.zeros(601, dtype=np.int64)
    for _, bad, beside in _bad_entries(dtype):
        probs = _one_hot_rows(601, classes, dtype)
        probs[row] = 0.0
        probs[row, classes // 2] = bad
        probs[row, 0] = beside
        with pytest.raises(crossent.InputError) as full:
            check_values(probs, name="probs", form="probs", first_row=0)
        assert f"({row}, {classes // 2})" in str(full.value)
        for name, metric in _METRICS.items():
            with pytest.raises(crossent.InputError) as fused:
                metric(probs, labels)
            assert str(fused.value) == str(full.value), name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("classes", [2, 10, 65])
def test_issue13_fused_pass_accepts_zeros_negative_zero_and_one(dtype: type, classes: int) -> None:
    probs = _one_hot_rows(300, classes, dtype)
    labels = np.zeros(300, dtype=np.int64)
    labels[1] = classes - 1
    assert crossent.negative_log_likelihood(probs, labels) == 0.0
    assert crossent.brier_score(probs, labels) == 0.0
    assert crossent.calibration_error(probs, labels).value == 0.0
    summary = crossent.EvaluationState(classes).update(probs, labels).compute()
    assert summary.accuracy == 1.0
    assert summary.mean_entropy == 0.0
