"""Issue 13, evaluation item: the rows are split into blocks of equal sizes, an even number
of them, so that two threads finish together.

``Predictions._spans`` used to cut blocks of ``_BLOCK_ELEMENTS // classes`` rows and a
short last one: 10^6 x 10 float32 probabilities made 9 full blocks and one of 56 287 rows,
so on two threads one thread ran five full blocks while the other ran four and the short
one (``EvaluationState.update``: the wall time of five blocks, not of 4.77).  The blocks
are now as equal as whole rows allow (sizes differ by at most one row), never more than
``_BLOCK_ELEMENTS`` entries (at least a row), and an even number of them when more than
one; they depend on the rows and classes only, so the numbers stay the same whatever the
threads.  Checked against mutants: main's spans (a short last block) fail the sizes; the
count not rounded to even fails the count; ``count // 2`` added instead of the remainder
fails the bound or the count; a block boundary off by one row fails the cover.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import crossent
from crossent import _parallel
from crossent.calibration import _inputs


def _spans(rows: int, classes: int) -> list[tuple[int, int]]:
    values = np.full((rows, classes), 1.0 / classes, dtype=np.float32)
    labels = np.zeros(rows, dtype=np.intp)
    predictions = _inputs.as_predictions(values, labels, form="probs", validate=False)
    return list(predictions._spans())


@pytest.mark.parametrize(
    ("rows", "classes"),
    [
        (1_000_000, 10),  # the benchmark's: 10 blocks of 100 000 rows
        (0, 10),
        (1, 10),
        (7, 3),
        (104_857, 10),  # exactly one full block
        (104_858, 10),  # one row more: two blocks
        (3 * 104_857 + 5, 10),  # four blocks (3.00005 rounded up, then to even)
        (2 * 104_857 + 1, 10),  # four blocks (3, rounded to even)
        (104_857 // 2, 20),  # exactly one full block
        (5, 1 << 21),  # rows longer than a block: one row a block
        (6, 1 << 21),
        (123_457, 1),
        (999_999, 7),
    ],
)
def test_issue13_spans_equal_even_and_bounded(rows: int, classes: int) -> None:
    spans = _spans(rows, classes)
    step = max(1, _inputs._BLOCK_ELEMENTS // classes)
    if rows == 0:
        assert spans == []
        return
    # contiguous, from 0 to rows, no empty block
    assert spans[0][0] == 0
    assert spans[-1][1] == rows
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    sizes = np.array([stop - start for start, stop in spans])
    assert np.all(sizes >= 1)
    assert np.all(sizes <= step)  # the memory bound of a block
    assert sizes.max() - sizes.min() <= 1  # balanced: no short last block
    if rows <= step:
        assert spans == [(0, rows)]  # one block: no thread pool (small inputs)
    elif 2 * step >= rows:
        assert len(spans) == 2
    else:
        assert len(spans) % 2 == 0 or len(spans) == rows  # even, or one row a block
        assert len(spans) - 2 < rows / step  # at most one block more than ceil needs


def test_issue13_spans_of_the_benchmark() -> None:
    spans = _spans(1_000_000, 10)
    assert spans == [(100_000 * i, 100_000 * (i + 1)) for i in range(10)]


def test_issue13_balanced_blocks_same_numbers_whatever_the_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # blocks of 4096 entries: 61 x 50 rows -> 31 blocks rounded to 32, uneven rows each
    monkeypatch.setattr(_inputs, "_BLOCK_ELEMENTS", 4096)
    rng = np.random.default_rng(13)
    logits = rng.normal(size=(2_500, 50)) * 3
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    labels = rng.integers(0, 50, size=2_500)

    def summary() -> tuple[object, ...]:
        out = crossent.EvaluationState(50).update(probs, labels).compute()
        return (
            out.nll,
            out.brier,
            out.spherical,
            out.mean_entropy,
            out.accuracy,
            out.calibration.value,
            out.per_class_nll.tolist(),
            out.most_surprising,
        )

    results = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(_parallel, "workers", lambda threads=threads: threads)
        results.append(summary())
    assert results[0] == results[1] == results[2]
