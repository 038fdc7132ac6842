"""Issue 13, branch upd12 (``EvaluationState.update``'s per-call work): a batch of several
blocks (stored float probabilities of more than ``_inputs._BLOCK_ELEMENTS`` entries)
orders the most surprising rows of every block at once (``numpy.lexsort`` by surprisal,
then row) instead of merging them block by block with ``_top``.  The kept rows must be
those of ``_top`` over every row of the batch (and the state's rows before it): the
largest surprisals, earlier rows first on ties, NaN taking no place, the -0.0 of a
probability of 1 tied with +0.0.

Guards: they pass on main too (the same rows, in less Python).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent
from crossent.calibration import _inputs, _row_kernels

pytest.importorskip("numba")

_CLASSES = 1000  # (few rows a block: cheap oracles)
_ROWS = _inputs._BLOCK_ELEMENTS // _CLASSES + 60  # two blocks (of 554 rows each)


def _oracle(
    probs: np.ndarray, labels: np.ndarray, keep: int, first_row: int = 0
) -> list[tuple[float, int]]:
    """``(surprisal, row)`` of the ``keep`` largest surprisals of every row (the
    kernels' logarithm, elementwise), earlier rows first on ties, NaN left out:
    ``sorted`` over the whole batch."""
    p_label = probs[np.arange(len(labels)), labels].astype(np.float64)
    values = _row_kernels.surprisal(p_label).tolist()
    rows = [(v, first_row + i) for i, v in enumerate(values) if not math.isnan(v)]
    return sorted(rows, key=lambda item: (-item[0], item[1]))[:keep]


def _batch(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 rows of _CLASSES classes; ties in both blocks (rows
    repeated, the same low label probability), rows of a probability 1 (surprisal
    -0.0) and rows whose label probability is 0 (+inf)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(_ROWS, _CLASSES)) * 2.0
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    probs = p.astype(np.float32)
    labels = rng.integers(0, _CLASSES, _ROWS)
    tied = np.full(_CLASSES, 0.1 / (_CLASSES - 2), dtype=np.float32)
    tied[0], tied[1] = np.float32(1e-30), np.float32(0.9)
    for row in (7, 500, _ROWS - 40, _ROWS - 3):  # both blocks: ties broken by row
        probs[row], labels[row] = tied, 0
    certain = np.zeros(_CLASSES, dtype=np.float32)
    certain[3] = 1.0
    for row in (11, _ROWS - 2):
        probs[row], labels[row] = certain, 3
    probs[20, 5], labels[20] = 0.0, 5  # (a zero entry: surprisal +inf)
    probs[20] /= probs[20].sum()
    return probs, labels


def test_issue13_upd12_kept_rows_over_blocks() -> None:
    """Two blocks: the kept rows (10 and 300) are the oracle's, in its order, from
    an empty state and after a first batch whose rows tie with the second's."""
    probs, labels = _batch(seed=12)
    for keep in (10, 300):
        state = crossent.EvaluationState(_CLASSES, keep=keep, entropy=False).update(probs, labels)
        assert state.compute().most_surprising == [
            (row, value) for value, row in _oracle(probs, labels, keep)
        ]
    # a first batch (one block) holding rows that tie with the second batch's
    head = 50
    state = crossent.EvaluationState(_CLASSES, keep=10, entropy=False)
    state.update(probs[:head], labels[:head])
    state.update(probs, labels, first_row=0)  # (the same rows again, numbered from 0)
    everything = _oracle(probs[:head], labels[:head], 10) + _oracle(probs, labels, 10)
    expected = sorted(everything, key=lambda item: (-item[0], item[1]))[:10]
    assert state.compute().most_surprising == [(row, value) for value, row in expected]


def test_issue13_upd12_nan_and_zero_rows_unvalidated() -> None:
    """validate=False: NaN rows in both blocks take no place, rows of probability 1
    (-0.0) are kept when ``keep`` reaches them, 1e9 entries give -log 1e9; the state's
    sums as a block-by-block update's."""
    probs, labels = _batch(seed=13)
    probs[[3, 600, _ROWS - 10]] = np.nan
    probs[40, labels[40]] = 1e9
    keep = _ROWS  # every row that has a surprisal, -0.0 ones included
    state = crossent.EvaluationState(_CLASSES, keep=keep, entropy=False)
    state.update(probs, labels, validate=False)
    found = state.compute().most_surprising
    expected = _oracle(probs, labels, keep)
    assert found == [(row, value) for value, row in expected]
    assert len(found) == _ROWS - 3
    zero_rows = [row for row, value in found if value == 0.0]
    assert {11, _ROWS - 2} <= set(zero_rows)
    # the batch cut into single-block updates, merged: the same rows
    cut = 800
    left = crossent.EvaluationState(_CLASSES, keep=keep, entropy=False)
    left.update(probs[:cut], labels[:cut], validate=False)
    right = crossent.EvaluationState(_CLASSES, keep=keep, entropy=False)
    right.update(probs[cut:], labels[cut:], validate=False, first_row=cut)
    assert left.merge(right).compute().most_surprising == found
