"""A batch's blocks added into the state's sums in place (issue 13, evaluation).

``EvaluationState.update`` (every path but the stacked top-label one) and ``crossent
report``'s first pass added each block's sums to the state's by ``a + b``: new arrays
every block, three of ``classes x bins`` float64 for the class-wise bins (6 MB each at
50 000 classes), which the wide report spent much of its first pass allocating.  Now a
batch's first block makes new arrays and its later blocks are added into those in
place (the same additions, in the same order): one allocation a batch.

Checked here: the numbers are those of merging one state per block in block order (an
independent route through the public API: ``merge`` adds fresh arrays), bit for bit;
the bins are allocated once a batch, not once a block (fails on main: once a block);
and no array that anything held before the batch (a ``compute`` result, a shallow
copy, a merged state, the state saved for a failed batch) is ever written.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import crossent
from crossent import _parallel
from crossent._report import _compute
from crossent.calibration import _binning, _inputs
from crossent.errors import InputError

_CLASSES, _BLOCK_ROWS = 7, 50


def _batch(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(rows, _CLASSES)) * 2
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return probs.astype(np.float32), rng.integers(0, _CLASSES, rows)


def _fields(state: crossent.EvaluationState) -> list[np.ndarray]:
    summary = state.compute()
    stats = summary.calibration.statistics
    return [
        np.array([summary.nll, summary.brier, summary.spherical, summary.accuracy]),
        np.array([summary.mean_entropy if summary.mean_entropy is not None else 0.0]),
        summary.per_class_nll,
        summary.per_class_count,
        stats.count,
        stats.confidence_sum,
        stats.hits,
        np.array([value for _, value in summary.most_surprising]),
        np.array([row for row, _ in summary.most_surprising]),
    ]


def _same_bits(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), strict=True)


_SCOPES = [
    {"scope": "class-wise"},
    {"scope": "class-wise", "binning": "quantile"},
    {"scope": "top-label", "binning": "quantile"},
]


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_inputs, "_BLOCK_ELEMENTS", _BLOCK_ROWS * _CLASSES)


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("options", _SCOPES)
def test_issue13_batch_in_place_equals_merged_blocks(options: dict[str, str]) -> None:
    probs, labels = _batch(9 * _BLOCK_ROWS + 13, seed=1)
    state = crossent.EvaluationState(_CLASSES, **options).update(probs, labels)
    merged = crossent.EvaluationState(_CLASSES, **options)
    spans = list(_inputs.as_predictions(probs, labels, form="probs")._spans())  # the blocks
    assert len(spans) == 10
    for start, stop in spans:
        one = crossent.EvaluationState(_CLASSES, **options)
        merged = merged.merge(one.update(probs[start:stop], labels[start:stop], first_row=start))
    _same_bits(_fields(state), _fields(merged))


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("options", _SCOPES)
def test_issue13_batch_allocates_the_bins_once(
    options: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten blocks, at most one ``BinStatistics.__add__`` (main: ten; the class-wise
    equal-width bins none: their blocks are added sparse, into one copy)."""
    added = []
    plain_add = _binning.BinStatistics.__add__

    def counted(self: _binning.BinStatistics, other: _binning.BinStatistics) -> object:
        added.append(1)
        return plain_add(self, other)

    monkeypatch.setattr(_binning.BinStatistics, "__add__", counted)
    probs, labels = _batch(10 * _BLOCK_ROWS, seed=2)
    crossent.EvaluationState(_CLASSES, **options).update(probs, labels)
    assert len(added) <= 1


@pytest.mark.usefixtures("small_blocks")
def test_issue13_report_first_pass_allocates_the_bins_once_a_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The report's two states (top-label and class-wise), 12 blocks in one batch: at
    most one ``__add__`` each in its first pass (main: 24)."""
    added = []
    first_pass = []
    plain_add, plain_first_pass = _binning.BinStatistics.__add__, _compute._first_pass

    def counted(self: _binning.BinStatistics, other: _binning.BinStatistics) -> object:
        added.append(bool(first_pass))  # (the report adds bins elsewhere too)
        return plain_add(self, other)

    def watched(*args: object, **kwargs: object) -> object:
        first_pass.append(1)
        try:
            return plain_first_pass(*args, **kwargs)
        finally:
            first_pass.clear()

    probs, labels = _batch(12 * _BLOCK_ROWS, seed=3)
    expected = crossent.EvaluationState(_CLASSES, scope="class-wise", keep=0)
    expected.update(probs, labels)
    monkeypatch.setattr(_binning.BinStatistics, "__add__", counted)
    monkeypatch.setattr(_compute, "_first_pass", watched)
    report = crossent.report(probs, labels, resamples=10)
    assert sum(added) <= 2
    got = report.classwise.calibration.statistics
    want = expected.compute().calibration.statistics
    for x, y in zip(
        (got.count, got.confidence_sum, got.hits),
        (want.count, want.confidence_sum, want.hits),
        strict=True,
    ):
        np.testing.assert_array_equal(x, y, strict=True)


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("options", _SCOPES)
def test_issue13_batch_never_writes_arrays_held_before(options: dict[str, str]) -> None:
    """What a ``compute`` returned, a shallow copy and a merged state keep their numbers
    while the state adds a batch of many blocks (twice: the second batch starts from the
    first batch's own arrays, which the summary between them holds)."""
    probs, labels = _batch(8 * _BLOCK_ROWS, seed=4)
    state = crossent.EvaluationState(_CLASSES, **options).update(probs[:40], labels[:40])
    shallow = copy.copy(state)
    merged = state.merge(crossent.EvaluationState(_CLASSES, **options))
    before = _fields(state)
    held = [copy.deepcopy(x) for x in before]
    statistics = state.compute().calibration.statistics
    snapshot = [a.copy() for a in (statistics.count, statistics.confidence_sum, statistics.hits)]
    state.update(probs, labels)
    middle = _fields(state)
    middle_held = [copy.deepcopy(x) for x in middle]
    state.update(probs, labels)
    _same_bits(before, held)
    _same_bits(middle, middle_held)
    _same_bits(_fields(shallow), held)
    _same_bits(_fields(merged), held)
    for array, saved in zip(
        (statistics.count, statistics.confidence_sum, statistics.hits), snapshot, strict=True
    ):
        np.testing.assert_array_equal(array, saved, strict=True)


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("options", _SCOPES)
def test_issue13_failed_batch_after_in_place_blocks_leaves_the_state(
    options: dict[str, str],
) -> None:
    """A bad entry in the last of ten blocks, after nine added in place: the state is
    as it was (its own arrays from before, unwritten), and the next batch adds onto it."""
    probs, labels = _batch(10 * _BLOCK_ROWS, seed=5)
    state = crossent.EvaluationState(_CLASSES, **options).update(probs[:60], labels[:60])
    expected = _fields(state)
    bad = probs.copy()
    bad[-1, 2] = np.nan
    with pytest.raises(InputError):
        state.update(bad, labels)
    _same_bits(_fields(state), expected)
    state.update(probs, labels)
    fresh = crossent.EvaluationState(_CLASSES, **options)
    fresh.update(probs[:60], labels[:60]).update(probs, labels)
    _same_bits(_fields(state), _fields(fresh))


@pytest.mark.parametrize("closed", ["left", "right"])
def test_issue13_class_bins_part_added_sparse_equals_the_dense_add(closed: str) -> None:
    """``ClassBinsPart.add_into`` (only the cells the block touches) against ``target +
    dense`` bit for bit, onto sums already holding values: a wide block (most columns
    all in bin 0), entries on the edges, -0.0, NaN and out-of-range entries
    (``validate=False``), repeated labels."""
    from crossent.calibration._state import class_bins_part, class_bins_uniform  # (not on main)

    rng = np.random.default_rng(6)
    rows, classes, bins = 40, 300, 15
    logits = rng.normal(size=(rows, classes)) * 3
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    edges = np.linspace(0.0, 1.0, bins + 1)
    probs[0, : bins + 1] = edges  # every edge, 0 and 1 included
    probs[1, 5] = -0.0
    probs[2, 7] = np.nan
    probs[3, 9] = 1.5
    probs[4, 11] = -0.25
    labels = rng.integers(0, classes, rows)
    labels[5:9] = 7
    part = class_bins_part(probs, labels, bins, closed)  # type: ignore[arg-type]
    assert isinstance(part, _binning.ClassBinsPart)
    assert 0 < part.binned.size < classes  # both kinds of column
    dense = class_bins_uniform(probs, labels, bins, closed)  # type: ignore[arg-type]
    start = _binning.BinStatistics(
        rng.integers(0, 50, (classes, bins)).astype(np.float64),
        rng.random((classes, bins)) * 10,
        rng.integers(0, 5, (classes, bins)).astype(np.float64),
    )
    expected = start + dense
    target = _binning.BinStatistics(*(a.copy() for a in start.arrays()))
    part.add_into(target)
    for got, want in zip(target.arrays(), expected.arrays(), strict=True):
        np.testing.assert_array_equal(got, want, strict=True)


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("options", _SCOPES)
def test_issue13_batch_in_place_same_bits_whatever_the_threads(
    options: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The blocks' sums are formed on the worker threads and added in block order by the
    caller, in place or not: one thread and four give the same bits (a pin: so on main)."""
    probs, labels = _batch(10 * _BLOCK_ROWS, seed=7)
    results = []
    for threads in (1, 4):
        monkeypatch.setattr(_parallel, "workers", lambda threads=threads: threads)
        state = crossent.EvaluationState(_CLASSES, **options)
        results.append(_fields(state.update(probs, labels).update(probs[:77], labels[:77])))
    _same_bits(*results)


@pytest.mark.usefixtures("small_blocks")
def test_issue13_batch_in_place_positive_class() -> None:
    """The positive-class scope (two classes, its bins added in place): the merged
    blocks' bits, and a ``compute`` result held across a batch keeps its numbers."""
    rng = np.random.default_rng(8)
    rows = 10 * _BLOCK_ROWS * _CLASSES // 2  # ten blocks of two classes
    positive = rng.random(rows).astype(np.float32)
    probs = np.stack([1 - positive, positive], axis=1)
    labels = (rng.random(rows) < positive).astype(np.intp)
    state = crossent.EvaluationState(2, scope="positive-class").update(probs[:30], labels[:30])
    held = state.compute().calibration.statistics
    arrays = (held.count, held.confidence_sum, held.hits)
    saved = [a.copy() for a in arrays]
    state.update(probs, labels)
    for array, before in zip(arrays, saved, strict=True):
        np.testing.assert_array_equal(array, before, strict=True)
    merged = crossent.EvaluationState(2, scope="positive-class").update(probs[:30], labels[:30])
    spans = list(_inputs.as_predictions(probs, labels, form="probs")._spans())
    assert len(spans) == 10
    for start, stop in spans:
        one = crossent.EvaluationState(2, scope="positive-class")
        block = probs[start:stop], labels[start:stop]
        merged = merged.merge(one.update(*block, first_row=30 + start))  # after the 30
    _same_bits(_fields(state), _fields(merged))
