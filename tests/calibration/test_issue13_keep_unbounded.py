"""Hostile API pass: ``EvaluationState(keep=...)`` and ``report(top=...)`` far above the rows.

``keep`` is how many most surprising rows to keep; a huge value reads "keep them all".
The Numba kernels allocated ``keep`` slots for every block (two arrays of ``keep``
float64/intp), so ``keep=10**12`` raised NumPy's "Unable to allocate 7.28 TiB" on the
first batch, and ``keep=10**7`` asked 160 MB a block. A block can give at most its
rows: the slots are now bounded by them. 5 of the 6 tests fail on main
(``MemoryError``, on the Numba path; the NumPy twin never allocated ``keep``); the
report's, whose ``top`` takes another path, passes there too.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent

_HUGE = 10**12


def _data(rows: int, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(rows, 3)) * 2
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (probs / probs.sum(axis=1, keepdims=True)).astype(dtype), rng.integers(0, 3, rows)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rows", [5, 70_000])  # one block; several (the stacked path)
def test_keep_above_the_rows_keeps_them_all(rows: int, dtype: type) -> None:
    probs, labels = _data(rows, dtype)
    every = crossent.EvaluationState(3, keep=_HUGE).update(probs, labels).compute()
    assert len(every.most_surprising) == rows
    exact = crossent.EvaluationState(3, keep=rows).update(probs, labels).compute()
    assert every.most_surprising == exact.most_surprising
    few = crossent.EvaluationState(3, keep=4).update(probs, labels).compute()
    assert every.most_surprising[:4] == few.most_surprising


def test_keep_above_the_rows_over_batches_and_merges() -> None:
    probs, labels = _data(40, np.float64)
    state = crossent.EvaluationState(3, keep=_HUGE)
    for start in range(0, 40, 7):
        state.update(probs[start : start + 7], labels[start : start + 7])
    other = crossent.EvaluationState(3, keep=_HUGE).update(probs, labels, first_row=40)
    merged = state.merge(other).compute()
    assert len(merged.most_surprising) == 80


def test_report_top_above_the_rows() -> None:
    probs, labels = _data(30, np.float64)
    result = crossent.report(probs, labels, top=_HUGE, resamples=3)
    assert len(result.to_dict()["most_surprising"]) == 30
