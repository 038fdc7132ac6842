"""Issue 13, evaluation speed: float32 rows of at most 12 classes read 8 at a time take
``_row_kernels_numba.tile_group_narrow``, ``tile_group`` with the columns 12-15 (the
+0.0 set aside, the least key) left out of the first level of its trees: x + 0.0 = x
for the squares (>= +0.0 or NaN), the maximum with the least key is the other key, and
the row's sum (only for the check) may keep a -0.0 where the addition gave +0.0.

Pinned here: ``tile_group_narrow`` bit for bit against ``tile_row`` on the hard rows of
test_issue13_rows8 for every k from 1 to 12 (labels at every position, -0.0, NaN and
out-of-range entries in each lane), and the whole pass (``row_summaries``) bit for bit
against the one-row tile on both sides of the boundary (11, 12: narrow; 13: all 16
columns), so that a row of 13 classes never takes the narrow tile."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.test_issue13_rows8 import (
    _GROUP,
    _LIMIT,
    _by_rows,
    _hard_rows,
    _labels,
    _outputs,
    _same,
)
from crossent.calibration import _row_kernels
from crossent.calibration._row_kernels import _CHUNK_ENTRIES, _TILE_CLASSES

pytest.importorskip("numba")

import numba

from crossent.calibration import _row_kernels_numba as kernels


@numba.njit
def _by_narrow_groups(flat, k, labels, limit, with_squares, with_top, out):
    # tile_group_narrow over each group of 8 rows (flat padded: every tile in bounds)
    groups = labels.shape[0] // _GROUP
    suspect = np.zeros(groups, dtype=np.intp)
    outputs = (out[0], out[1], out[2], out[3], with_squares, with_top)
    for g in range(groups):
        suspect[g] = kernels.tile_group_narrow(
            flat, g * _GROUP * k, k, labels, g * _GROUP, outputs, limit
        )
    return suspect


@pytest.mark.parametrize("k", range(1, kernels._NARROW_CLASSES + 1))
def test_issue13_narrow_tiles_group_is_the_one_row_tile(k: int) -> None:
    probs = _hard_rows(k, seed=50 + k)
    n = probs.shape[0]
    flat = np.concatenate([probs.reshape(-1), np.full(_TILE_CLASSES, 0.75, np.float32)])
    labels = _labels(n, k, seed=150 + k)
    expected = _outputs(n)
    per_row = _by_rows(flat, k, labels, _LIMIT, expected)
    grouped = n // _GROUP * _GROUP
    actual = _outputs(n)
    suspect = _by_narrow_groups(flat, k, labels, _LIMIT, True, True, actual)
    np.testing.assert_array_equal(suspect, per_row[:grouped].reshape(-1, _GROUP).sum(axis=1))
    _same(actual, expected, slice(0, grouped))


@pytest.mark.parametrize("k", [11, 12, 13])
def test_issue13_narrow_tiles_boundary_whole_pass(k: int) -> None:
    """row_summaries at 11 and 12 classes (the narrow tile) and 13 (all 16 columns,
    whose column 12 the narrow tile would leave out) against tile_row."""
    hard = _hard_rows(k, seed=3 * k)
    n = _CHUNK_ENTRIES // k + 2 * _GROUP + 3  # a chunk, then groups and left-over rows
    probs = np.resize(hard, (n, k))
    labels = _labels(n, k, seed=k)
    flat = np.concatenate([probs.reshape(-1), np.zeros(_TILE_CLASSES, np.float32)])
    expected = _outputs(n)
    suspect = int(_by_rows(flat, k, labels, _LIMIT, expected).sum())
    found, p, others, confidence, predicted, _ = _row_kernels.row_summaries(
        probs, labels, top=True, entropy=False, limit=_LIMIT, squares=True
    )
    assert found == suspect
    _same((p, others, confidence, predicted), expected, slice(None))
