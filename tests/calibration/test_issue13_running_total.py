"""Issue 13 (branch upd13): ``EvaluationState._add_blocks`` sums the blocks' outputs by
``_state._running_total``, row after row where the rows are wide, one
``numpy.add.accumulate`` where they are narrow (``numpy.add.accumulate`` of 96 blocks of
2065 columns, 10^5 x 1000, took 0.9 ms of ``update``'s Python after its blocks).

Pinned: both ways give ``numpy.add.accumulate(running, axis=0)[-1]`` (the sums before,
one addition a block for each column in block order) bit for bit, NaN payloads and
signed zeros included, on hard columns (1e16, 1, -1e16: another order gives another
sum) in padded views like ``BlocksTotals.running``; and an ``update`` of stacked blocks
on either side of the switch (wide rows of few blocks, narrow rows of many) gives the
block-by-block path's state (``map_totals``, ``_add``), the bins' rounding errors too.
Oracles: NumPy's accumulate, and the block-by-block path.  Guards (the update-level
cases pass on main too: the same sums); a mutant that sums the wide rows by
``numpy.add.reduce`` (pairwise on narrow shapes, 0.0 for -0.0 rows) fails the first.
"""

from __future__ import annotations

import numpy as np
import pytest
from tests.calibration.test_issue13_update_wall import _by_blocks

import crossent
from crossent.calibration import _inputs, _state, _summaries

pytest.importorskip("numba")


def _hard(rows: int, columns: int, seed: int) -> np.ndarray:
    """A padded view (rows a cache line and more apart) of columns whose sums depend
    on the order of their additions, with -0.0, infinities and NaN of two payloads."""
    rng = np.random.default_rng(seed)
    wide = np.zeros((rows, columns + 9))
    values = wide[:, :columns]
    values[:] = rng.choice([1e16, 1.0, -1e16, 0.5, -3.0, 2.0**-60], size=(rows, columns))
    values[0, ::3] = -0.0
    values[:, 1] = -0.0  # a column of -0.0 only: -0.0 (0.0 from a 0.0 start)
    marks = rng.random((rows, columns))
    values[marks < 0.01] = np.inf
    values[(marks > 0.01) & (marks < 0.02)] = -np.inf
    payloads = np.array([0x7FF8000000000001, 0xFFF8000000000123], dtype=np.uint64).view(np.float64)
    values[(marks > 0.02) & (marks < 0.025)] = payloads[0]
    values[(marks > 0.025) & (marks < 0.03)] = payloads[1]
    return values


@pytest.mark.parametrize(("rows", "columns"), [(5, 2065), (11, 85), (11, 11), (97, 85), (3, 2)])
def test_running_total_is_the_accumulated_last_row(rows: int, columns: int) -> None:
    running = _hard(rows, columns, seed=rows * columns)
    with np.errstate(invalid="ignore"):
        expected = np.add.accumulate(running, axis=0)[-1]
        total = _state._running_total(running)
    assert total.tobytes() == expected.tobytes()
    assert running.base is not None
    assert not np.shares_memory(total, running)


def _state_bits(state: crossent.EvaluationState) -> tuple[object, ...]:
    bins = state._bins
    arrays = (state._sums, state._class_count, state._class_surprisal, *bins.arrays())
    return (
        state.n,
        *(array.tobytes() for array in arrays),
        bins.error.tobytes(),
        state._surprising,
    )


@pytest.mark.parametrize(
    ("classes", "bins", "elements", "wide"),
    [(6, 15, 600, True), (2, 1, 40, False)],  # 4 blocks of 77 columns; 16 of 13
)
def test_stacked_update_on_either_side_is_the_block_by_block_state(
    monkeypatch: pytest.MonkeyPatch, classes: int, bins: int, elements: int, wide: bool
) -> None:
    monkeypatch.setattr(_inputs, "_BLOCK_ELEMENTS", elements)
    rng = np.random.default_rng(classes)
    probs = rng.dirichlet(np.full(classes, 0.3), size=320)
    probs[::7] = rng.dirichlet(np.full(classes, 0.02), size=probs[::7].shape[0])  # bin 0
    probs = probs.astype(np.float32)
    labels = rng.integers(0, classes, size=320)
    predictions = _inputs.as_predictions(probs, labels, form="probs")
    assert _summaries._stacked_applies(predictions)
    blocks = len(_summaries._block_bounds(predictions)) - 1
    width = 2 * classes + 5 + 4 * bins
    assert (width >= blocks + 1) == wide  # the side of _running_total's switch
    shapes = []
    running_total = _state._running_total
    monkeypatch.setattr(
        _state,
        "_running_total",
        lambda running: shapes.append(running.shape) or running_total(running),
    )
    for keep in (0, 3):
        options = {"bins": bins, "keep": keep}
        stacked = crossent.EvaluationState(classes, **options).update(probs[:100], labels[:100])
        stacked.update(probs, labels)  # (from the first batch's sums)
        by_blocks = crossent.EvaluationState(classes, **options)
        _by_blocks(by_blocks, probs[:100], labels[:100], True)
        _by_blocks(by_blocks, probs, labels, True)
        assert _state_bits(stacked) == _state_bits(by_blocks)
    assert (blocks + 1, width) in shapes
