"""``EvaluationState.update`` adds all of a batch or none of it.

A bad entry or label in a late block used to leave the blocks before it added to the
sums while the row count was not (every path but the stacked one of
``test_issue13_update_wall.py``), so the next ``compute`` divided the wrong sums by the
wrong count.  Each case here puts the bad value in the last block of a batch of
several blocks, catches the error, and checks that the state still computes what a
fresh state fed the good batch alone computes.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent.errors import InputError

_ROWS, _CLASSES = 120_000, 10  # 1.2 million entries: two blocks of 2^20


def _batch(dtype: type) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(_ROWS, _CLASSES))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return probs.astype(dtype), rng.integers(0, _CLASSES, _ROWS)


@pytest.mark.parametrize(
    ("scope", "binning", "dtype", "form"),
    [
        ("top-label", "uniform", np.float64, "probs"),  # the stacked path (Numba)
        ("top-label", "uniform", np.float64, "logits"),  # map_totals' blocks
        ("top-label", "uniform", np.float16, "probs"),  # converted blocks
        ("top-label", "quantile", np.float64, "probs"),  # the summaries' path
        ("class-wise", "uniform", np.float32, "probs"),  # every class's bins
    ],
)
@pytest.mark.parametrize("bad", ["entry", "label"])
def test_issue13_failed_update_leaves_the_state(
    scope: str, binning: str, dtype: type, form: str, bad: str
) -> None:
    probs, labels = _batch(dtype)
    values = np.log(probs.astype(np.float64)) if form == "logits" else probs
    good = values[:1000], labels[:1000]
    expected = (
        crossent.EvaluationState(_CLASSES, scope=scope, binning=binning)
        .update(*good, form=form)
        .compute()
    )
    state = crossent.EvaluationState(_CLASSES, scope=scope, binning=binning)
    state.update(*good, form=form)
    worse_values, worse_labels = values.copy(), labels.copy()
    if bad == "entry":
        worse_values[-1, 3] = np.nan
    else:
        worse_labels[-1] = _CLASSES
    with pytest.raises((InputError, IndexError)):
        state.update(worse_values, worse_labels, form=form)
    assert state.n == 1000
    got = state.compute()
    assert got.nll == expected.nll
    assert got.brier == expected.brier
    assert got.mean_entropy == expected.mean_entropy
    assert got.calibration.value == expected.calibration.value
