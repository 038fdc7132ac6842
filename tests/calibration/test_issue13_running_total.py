"""Issue 13 (branches upd13, upd15): ``EvaluationState._add_blocks`` sums the blocks'
outputs (``BlocksTotals.running``, the first row the state's sums) one addition a block
for each column, in block order.  upd13 did it by ``_state._running_total`` (row after
row where the rows are wide, one ``numpy.add.accumulate`` where narrow); upd15 by one
compiled call, ``_row_kernels.merge_blocks``, which also adds the bins' rounding errors
(TwoSum of each block's confidence sums, as ``_binning.two_sum_error``) and orders the
blocks' most surprising rows (``numpy.lexsort`` by surprisal, then row, NaN taking no
place), where some 40 NumPy calls did.

Pinned: its totals are ``numpy.add.accumulate(running, axis=0)[-1]`` bit for bit, NaN
payloads and signed zeros included, on hard columns (1e16, 1, -1e16: another order
gives another sum) in padded views like ``BlocksTotals.running``; its errors are the
NumPy TwoSum formula's; its rows those of the lexsort; and an ``update`` of stacked
blocks (wide rows of few blocks, narrow rows of many) gives the block-by-block path's
state (``map_totals``, ``_add``), the bins' rounding errors too.  Oracles: NumPy's
accumulate, TwoSum and lexsort, and the block-by-block path.  Guards: the update-level
cases pass on main too (the same sums); the kernel-level ones need upd15's kernel.  A
mutant that sums the rows by ``numpy.add.reduce`` (pairwise on narrow shapes, 0.0 for
-0.0 rows) fails the first.
"""

from __future__ import annotations

import numpy as np
import pytest
from tests.calibration.test_issue13_update_wall import _by_blocks

import crossent
from crossent.calibration import _inputs, _row_kernels, _summaries
from crossent.calibration._binning import two_sum_error

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
def test_merged_total_is_the_accumulated_last_row(rows: int, columns: int) -> None:
    running = _hard(rows, columns, seed=rows * columns)
    with np.errstate(invalid="ignore"):
        expected = np.add.accumulate(running, axis=0)[-1]
    found = np.full((rows - 1, 2), -1, dtype=np.intp)[:, :0]  # (views, as BlocksTotals')
    total = _row_kernels.merge_blocks(
        running, 0, columns, False, np.zeros(0, np.intp), found, found * 0.0, list(range(rows)), 0
    )[0]
    assert total.tobytes() == expected.tobytes()
    assert running.base is not None
    assert not np.shares_memory(total, running)


def test_merged_errors_counts_and_rows_are_numpys() -> None:
    """The bins' errors, the class counts and the most surprising rows of
    ``merge_blocks`` against the NumPy formulas ``_add_blocks`` used before (upd13):
    TwoSum of each block's confidence sums added row after row, then to the errors'
    total; the counts as integers; the found rows by ``numpy.lexsort``."""
    rng = np.random.default_rng(5)
    blocks, classes, bins, keep = 6, 3, 4, 5
    at = 2 * classes + 5
    wide = np.zeros((1 + blocks, at + 4 * bins + 7))
    running = wide[:, : at + 4 * bins]
    running[1:, :classes] = rng.integers(0, 50, size=(blocks, classes))
    running[:, at:] = rng.choice([1e16, 1.0, -1e16, 0.3, 2.0**-60], size=(1 + blocks, 4 * bins))
    counts_before = rng.integers(0, 9, size=classes)
    found = np.full((blocks, keep + 3), -1, dtype=np.intp)[:, :keep]  # (views, as
    found_p = np.zeros((blocks, keep + 3))[:, :keep]  # BlocksTotals' outputs)
    for b in range(blocks):
        taken = rng.integers(0, keep + 1)
        found[b, :taken] = rng.choice(40, size=taken, replace=False)
        found_p[b, :taken] = rng.choice([0.5, 0.25, 1.0, np.nan, 1e-300, 0.0], size=taken)
    bounds = [40 * b for b in range(blocks + 1)]
    _, counts, errors, values, rows = _row_kernels.merge_blocks(
        running, classes, at, True, counts_before, found, found_p, bounds, keep
    )
    sums = np.add.accumulate(running, axis=0)
    conf = running[:, at + bins : at + 2 * bins]
    with np.errstate(invalid="ignore", over="ignore"):
        added = two_sum_error(
            sums[:-1, at + bins : at + 2 * bins], conf[1:], sums[1:, at + bins : at + 2 * bins]
        )
        expected_errors = sums[-1, at + 3 * bins :] + added.sum(axis=0)
    assert errors.tobytes() == expected_errors.tobytes()
    assert counts.tolist() == (counts_before + sums[-1, :classes].astype(np.intp)).tolist()
    taken = found >= 0
    all_rows = (found + np.asarray(bounds[:-1])[:, None])[taken]
    all_values = _row_kernels.surprisal(found_p[taken])
    named = ~np.isnan(all_values)
    all_rows, all_values = all_rows[named], all_values[named]
    order = np.lexsort((all_rows, -all_values))[:keep]
    assert rows.tolist() == all_rows[order].tolist()
    assert values.tobytes() == all_values[order].tobytes()


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
    assert (width >= blocks + 1) == wide  # (upd13's two sides of its switch)
    shapes = []
    merge = _row_kernels.merge_blocks
    monkeypatch.setattr(
        _row_kernels,
        "merge_blocks",
        lambda running, *rest, **options: (
            shapes.append(running.shape) or merge(running, *rest, **options)
        ),
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


def test_a_keep_past_int64_keeps_every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """``keep`` is any non-negative integer: ``keep=10**30`` (past int64) keeps every row
    of a stacked update, as ``keep=10**12`` does, not an ``OverflowError`` from the
    kernel's arguments (a guard: main sliced by it in NumPy)."""
    monkeypatch.setattr(_inputs, "_BLOCK_ELEMENTS", 600)
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(4), size=500).astype(np.float32)
    labels = rng.integers(0, 4, size=500)
    huge = crossent.EvaluationState(4, keep=10**30).update(probs, labels)
    every = crossent.EvaluationState(4, keep=10**12).update(probs, labels)
    assert len(huge._surprising) == 500
    assert huge._surprising == every._surprising
