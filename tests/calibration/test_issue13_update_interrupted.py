"""Issue 13 follow-up (review): ``EvaluationState.update`` of stacked blocks
(``_summaries._stacked_totals`` then ``_add_blocks``) leaves the state as it was when the
adds are interrupted (a ``KeyboardInterrupt`` in their Python: the merge of the most
surprising rows with the state's, after the counts, sums and bins were replaced), as
``update`` promises and its other paths do (``EvaluationState._all_or_nothing``).

At 540dca7 ``_add_blocks`` had replaced the counts, sums and bins before the merge, and
nothing put them back: the state counted the batch's rows in its classes and bins but
not in ``n``. Oracle: the state's bits before the call. Since branch upd12 the blocks'
rows are ordered at once and ``_top`` runs once an add, where the state holds rows: the
interrupt comes at that call (it came at the second, block by block, before).
"""

from __future__ import annotations

from dataclasses import astuple

import numpy as np
import pytest

import crossent
from crossent.calibration import _inputs, _state, _summaries

pytest.importorskip("numba")


def _bits(state: crossent.EvaluationState) -> tuple[object, ...]:
    arrays = (state._sums, state._class_count, state._class_surprisal, *astuple(state._bins))
    return (state.n, *(array.tobytes() for array in arrays), state._surprising)


def test_an_interrupted_add_leaves_the_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_inputs, "_BLOCK_ELEMENTS", 2000)  # 600 x 10: 3 blocks
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(10), size=600).astype(np.float32)
    labels = rng.integers(0, 10, size=600)
    state = crossent.EvaluationState(10, keep=4).update(p[:300], labels[:300])
    predictions = _inputs.as_predictions(p[300:], labels[300:], form="probs")
    assert _summaries._stacked_applies(predictions)  # the path under test
    before = _bits(state)
    top = _state._top
    calls = []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return top(*args)

    monkeypatch.setattr(_state, "_top", interrupted)
    with pytest.raises(KeyboardInterrupt):
        state.update(p[300:], labels[300:])
    assert _bits(state) == before
    monkeypatch.setattr(_state, "_top", top)  # the same batch again: as if never tried
    again = crossent.EvaluationState(10, keep=4).update(p[:300], labels[:300])
    assert _bits(state.update(p[300:], labels[300:])) == _bits(again.update(p[300:], labels[300:]))
