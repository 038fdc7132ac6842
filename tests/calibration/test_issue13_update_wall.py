"""Issue 13, ``EvaluationState.update``'s wall time: the blocks of stored float32 or
float64 probabilities are read by one Python call per thread
(``_row_kernels.blocks_reader``: the same kernel call a block as ``block_totals``, the
outputs stacked by block; each thread takes the next block not yet taken, the caller's
from the front, the pool's from the back: ``_summaries._NextBlocks``), and the blocks'
sums are then added in block order (``numpy.add.accumulate``), instead of a thread-pool
task, a ``block_totals`` call and an ``_add`` a block (``_summaries.map_totals``, which
the other scopes, forms and layouts still take).

Pinned here, against that path run by hand (``map_totals``, then ``_add`` of each
block in order, as ``update`` did): the state's every sum, count, bin and most
surprising row bit for bit, over many small blocks, on 1, 2 and 3 threads, float32 and
float64, both bin closures, with and without the most surprising rows, after an
earlier update (the running sums start from non-zero sums); the NLL, Brier score and
mean entropy against a float64 oracle (``math.fsum``); a bad entry or label in a late
block: the same error; unchecked NaN rows and out-of-range labels (``validate=False``):
the same sums, or the same ``IndexError`` naming the first bad block's row; a
Fortran-ordered input (the other path): the same bits.

Mutants these fail on: the blocks' sums added pairwise (``total + parts.sum(axis=0)``)
instead of in order; the read stopping at a block with an unchecked suspect row (the
loop in ``_stacked_totals.read`` returning instead of going on); the most surprising
rows counted from the part's first block instead of their own (``bounds[0]`` for
``bounds[block]``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent
from crossent import _parallel
from crossent.calibration import _inputs, _state, _summaries
from crossent.calibration._inputs import as_predictions
from crossent.calibration._summaries import map_totals
from crossent.errors import InputError

pytest.importorskip("numba")


def _by_blocks(
    state: crossent.EvaluationState, probs: np.ndarray, labels: np.ndarray, validate: bool
) -> crossent.EvaluationState:
    """``update`` as it was: ``map_totals``' blocks, each added in turn."""
    start = state.n
    predictions = as_predictions(
        probs, labels, form="probs", validate=validate, first_row=start, defer=True
    )
    for block_start, totals in map_totals(predictions, state._request(state.spec.bins)):
        state._add(_state._shifted(totals, start + block_start))
    state.n += predictions.n
    return state


def _bits(state: crossent.EvaluationState) -> tuple[object, ...]:
    bins = state._bins
    return (
        state.n,
        state._sums.tobytes(),
        state._class_count.tobytes(),
        state._class_surprisal.tobytes(),
        bins.count.tobytes(),
        bins.confidence_sum.tobytes(),
        bins.hits.tobytes(),
        state._surprising,
    )


def _probabilities(
    rows: int, classes: int, seed: int, dtype: type = np.float32
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(rows, classes)) * 2.5
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = p.astype(dtype)
    p /= p.sum(axis=1, keepdims=True, dtype=np.float64).astype(dtype)
    if dtype == np.float64:
        p /= p.sum(axis=1, keepdims=True)
    return p, rng.integers(0, classes, size=rows)


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setattr(_inputs, "_BLOCK_ELEMENTS", 2000)  # many blocks of few rows
    return monkeypatch


def _both(
    probs: np.ndarray, labels: np.ndarray, *, validate: bool = True, **options: object
) -> tuple[crossent.EvaluationState, crossent.EvaluationState]:
    classes, cut = probs.shape[1], probs.shape[0] // 3
    new = crossent.EvaluationState(classes, **options)
    old = crossent.EvaluationState(classes, **options)
    for part in (slice(0, cut), slice(cut, None)):
        new.update(probs[part], labels[part], validate=validate)
        _by_blocks(old, probs[part], labels[part], validate)
    return new, old


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize(
    ("classes", "dtype", "options"),
    [
        (10, np.float32, {"keep": 7}),
        (37, np.float32, {"keep": 0, "closed": "right"}),
        (10, np.float64, {"keep": 3, "bins": 8}),
    ],
)
def test_issue13_update_wall_same_bits_as_block_by_block(
    small_blocks: pytest.MonkeyPatch,
    threads: int,
    classes: int,
    dtype: type,
    options: dict[str, object],
) -> None:
    small_blocks.setattr(_parallel, "workers", lambda: threads)
    probs, labels = _probabilities(3001, classes, seed=classes, dtype=dtype)
    new, old = _both(probs, labels, **options)
    assert _bits(new) == _bits(old)


def test_issue13_update_wall_float64_oracle(small_blocks: pytest.MonkeyPatch) -> None:
    probs, labels = _probabilities(3001, 10, seed=5)
    summary = crossent.EvaluationState(10, keep=7).update(probs, labels).compute()
    p = probs.astype(np.float64)
    rows = np.arange(p.shape[0])
    p_label = p[rows, labels]
    terms = -p * np.log(p, out=np.zeros_like(p), where=p > 0)
    brier = (p**2).sum(axis=1) - p_label**2 + (1 - p_label) ** 2
    n = p.shape[0]
    assert math.isclose(summary.nll, math.fsum(-np.log(p_label)) / n, rel_tol=1e-12)
    assert math.isclose(summary.brier, math.fsum(brier) / n, rel_tol=1e-12)
    assert math.isclose(summary.mean_entropy, math.fsum(terms.ravel()) / n, rel_tol=1e-12)
    surprising = np.lexsort((rows, p_label))[:7]
    assert [row for row, _ in summary.most_surprising] == surprising.tolist()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("bad", ["nan", "label", "sum"])
def test_issue13_update_wall_bad_late_block_same_error(
    small_blocks: pytest.MonkeyPatch, threads: int, bad: str
) -> None:
    small_blocks.setattr(_parallel, "workers", lambda: threads)
    probs, labels = _probabilities(3000, 10, seed=6)
    if bad == "nan":
        probs[2777, 3] = np.nan
    elif bad == "label":
        labels[2555] = 10
    else:
        probs[2333, 0] += 0.01
    errors = []
    for update in (
        lambda: crossent.EvaluationState(10).update(probs, labels),
        lambda: _by_blocks(crossent.EvaluationState(10), probs, labels, True),
    ):
        with pytest.raises(crossent.InputError) as error:
            update()
        errors.append(str(error.value))
    assert errors[0] == errors[1]


@pytest.mark.parametrize("threads", [1, 2])
def test_issue13_update_wall_unchecked_suspect_rows_same_sums(
    small_blocks: pytest.MonkeyPatch, threads: int
) -> None:
    small_blocks.setattr(_parallel, "workers", lambda: threads)
    probs, labels = _probabilities(3000, 10, seed=7)
    probs[1234, 5] = np.nan  # a suspect row read on, unchecked
    probs[2100, 0] = 1.5
    new, old = _both(probs, labels, validate=False, keep=4)
    assert _bits(new) == _bits(old)


def test_issue13_update_wall_unchecked_labels_first_bad_block(
    small_blocks: pytest.MonkeyPatch,
) -> None:
    small_blocks.setattr(_parallel, "workers", lambda: 2)
    probs, labels = _probabilities(3000, 10, seed=8)
    bounds = [block * 3000 // 16 for block in range(17)]  # 16 blocks, 8 a thread
    assert _summaries._block_bounds(as_predictions(probs, labels, form="probs")) == bounds
    labels[1050] = 10  # block 5 (the caller's end)
    labels[2603] = 12  # block 13 (the pool's end)
    # the row of the batch (evalreview: it was the row in its block, 1050 - bounds[5]);
    # the labels' InputError whatever validate says (labelsafe: it was an IndexError)
    with pytest.raises(InputError, match=r"\(row 1050 has 10\)"):
        crossent.EvaluationState(10).update(probs, labels, validate=False)
    labels[1050] = 3
    with pytest.raises(InputError, match=r"\(row 2603 has 12\)"):
        crossent.EvaluationState(10).update(probs, labels, validate=False)


def test_issue13_update_wall_fortran_order_same_bits(small_blocks: pytest.MonkeyPatch) -> None:
    probs, labels = _probabilities(3000, 10, seed=9)
    c_order = crossent.EvaluationState(10).update(probs, labels)
    f_order = crossent.EvaluationState(10).update(np.asfortranarray(probs), labels)
    assert _bits(c_order) == _bits(f_order)
