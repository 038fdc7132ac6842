"""Issue 13, evaluation under load (branch steal1): a pool thread that stalls does not hold
the caller up.

The one-shot metrics and ``EvaluationState.update`` read stored float probabilities
block by block on the caller's thread (from the front) and the pool's (from the back:
``_summaries._stacked_totals``).  Under load a pool thread that has taken a block, or
that has not yet started, may sit descheduled for several of the scheduler's slices,
and the caller, its own blocks read, waited for it (branch short10 measured the NLL's
median of 10^6 x 10 float32 at 12.2 ms against 5.5 by the older path, load about 9).
Now the caller never waits for a pool thread that has taken nothing, and reads again
itself a block that a pool thread has held for half as long again as the caller's own
blocks took (``_NextBlocks.stragglers``), into a copy of the outputs.

Pinned here with pool threads that stall until released (events, no sleeps): before
their first block (taken, not read) and before taking any; every call returns without
their release (on main each waits for it: the stand-in gives up after 10 s and says
so), with every metric, the calibration error's bins and the state's every sum, bin and
most surprising row bit for bit those of one thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import crossent
from crossent import _parallel
from crossent.calibration import _inputs, _summaries

from .test_issue13_next_blocks import _bits, _probabilities, _wrapped_totals
from .test_issue13_oneshot_stacked import _bits as _metric_bits

pytest.importorskip("numba")

_CALLS: dict[str, Callable[[np.ndarray, np.ndarray], Any]] = {
    "nll": lambda p, y: _metric_bits(crossent.negative_log_likelihood(p, y)),
    "ece": lambda p, y: _metric_bits(crossent.calibration_error(p, y)),
    "update": lambda p, y: _bits(crossent.EvaluationState(10, keep=5).update(p, y)),
    "brier unchecked": lambda p, y: _metric_bits(crossent.brier_score(p, y, validate=False)),
}


@pytest.mark.parametrize("stall", ["block taken", "nothing taken"])
def test_issue13_stalled_pool_thread_does_not_hold_the_caller(
    monkeypatch: pytest.MonkeyPatch, stall: str
) -> None:
    monkeypatch.setattr(_inputs, "_BLOCK_ELEMENTS", 2000)  # 3000 x 10: 16 blocks
    probs, labels = _probabilities(3000, 10, seed=17)
    probs[::41] = np.float32(1e-42)  # tiny confidences (bin 0) and surprisals of 96.7
    probs[::41, 2] = 1.0
    monkeypatch.setattr(_parallel, "workers", lambda: 1)
    alone = {name: call(probs, labels) for name, call in _CALLS.items()}

    monkeypatch.setattr(_parallel, "workers", lambda: 2)
    release = threading.Event()
    gave_up: list[bool] = []  # a stalled thread's wait ran out: the caller waited for it

    def stalled() -> None:
        if not release.wait(timeout=10):
            gave_up.append(True)

    if stall == "block taken":  # every pool thread stalls before its first block's read
        _wrapped_totals(monkeypatch, lambda mine: None if mine else stalled())
    else:  # ... or before it takes a block
        taking = _summaries._NextBlocks.taking

        def late(blocks: _summaries._NextBlocks, *, front: bool) -> Iterator[int]:
            if not front:
                stalled()
            yield from taking(blocks, front=front)

        monkeypatch.setattr(_summaries._NextBlocks, "taking", late)
    try:
        shared = {name: call(probs, labels) for name, call in _CALLS.items()}
        assert not gave_up  # main: every call waited for the release (10 s)
    finally:
        release.set()
        # both pool threads idle again before the next test (the stalled ones go on)
        together = threading.Barrier(2, timeout=10)
        list(_parallel.ordered_map(lambda _: together.wait(), range(2)))
    assert shared == alone
