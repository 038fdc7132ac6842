"""Issue 13, ``EvaluationState.update``'s blocks taken as they come: every thread of
``run_in_parts`` (the caller's among them) reads the next block not yet taken
(``_summaries._NextBlocks``: the caller's from the first block on, the pool's from the last
back), so that a thread slowed by other work reads fewer blocks instead of holding the
call up with half of them.

Pinned here: with one thread 20 ms slower a block (a kernel wrapped to sleep off the
caller's thread), the caller reads most of the blocks, and the state's every sum, bin
and most surprising row is bit for bit the one-thread state's (each block one kernel
call whichever thread reads it, the sums added in block order); a block that raises
stops the other threads from taking more; ``_NextBlocks`` gives each block once to
threads that share it, in order from its end.  (The bits on 1, 2 and 3 threads
without a slow thread, and the errors of bad blocks: ``test_issue13_update_wall``.)

Mutants these fail on: contiguous parts, one a thread (main's ``run_in_parts`` split:
the caller reads 8 of 16 blocks); the ``close()`` on a raising block left out (the
caller reads every block left).  ``_NextBlocks`` without its lock passes here: under
CPython's GIL its ``__next__`` (no call, no backward jump) is never interrupted; the
lock is for a Python without the GIL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import astuple
from typing import Any

import numpy as np
import pytest

import crossent
from crossent import _parallel
from crossent.calibration import _inputs, _row_kernels, _summaries

pytest.importorskip("numba")


def _probabilities(rows: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(rows, classes)) * 2.5
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
    return p, rng.integers(0, classes, size=rows)


def _bits(state: crossent.EvaluationState) -> tuple[object, ...]:
    """Every sum, count and bin of ``state`` as bytes, and its most surprising rows."""
    arrays = (state._sums, state._class_count, state._class_surprisal, *astuple(state._bins))
    return (*(array.tobytes() for array in arrays), state._surprising)


def _wrapped_totals(
    monkeypatch: pytest.MonkeyPatch, before: Callable[[bool], None]
) -> dict[bool, int]:
    """The ``totals`` kernel with ``before(in the caller's thread)`` run before each
    block; returns the blocks read, by whether in the caller's thread."""
    kernels = dict(_row_kernels._kernels())
    totals = kernels["totals"]
    read = {True: 0, False: 0}
    caller = threading.main_thread()

    def counted(*args: Any) -> Any:
        mine = threading.current_thread() is caller
        before(mine)
        read[mine] += 1
        return totals(*args)

    kernels["totals"] = counted
    monkeypatch.setattr(_row_kernels, "_kernels", lambda: kernels)
    return read


@pytest.fixture
def sixteen_blocks(monkeypatch: pytest.MonkeyPatch) -> tuple[np.ndarray, np.ndarray]:
    monkeypatch.setattr(_inputs, "_BLOCK_ELEMENTS", 2000)  # 3000 x 10: 16 blocks
    probs, labels = _probabilities(3000, 10, seed=11)
    predictions = _inputs.as_predictions(probs, labels, form="probs")
    assert len(_summaries._block_bounds(predictions)) == 17
    return probs, labels


def test_issue13_next_blocks_slow_thread_reads_fewer_same_bits(
    sixteen_blocks: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    probs, labels = sixteen_blocks
    monkeypatch.setattr(_parallel, "workers", lambda: 1)
    alone = crossent.EvaluationState(10, keep=5).update(probs, labels)
    monkeypatch.setattr(_parallel, "workers", lambda: 2)
    read = _wrapped_totals(monkeypatch, lambda mine: None if mine else time.sleep(0.02))
    shared = crossent.EvaluationState(10, keep=5).update(probs, labels)
    assert read[True] + read[False] >= 16  # (17: the slow thread's block taken over)
    assert read[True] >= 12  # contiguous parts: 8
    assert _bits(shared) == _bits(alone)


def test_issue13_next_blocks_raising_block_stops_the_others(
    sixteen_blocks: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    probs, labels = sixteen_blocks
    monkeypatch.setattr(_parallel, "workers", lambda: 2)
    closed = threading.Event()
    close = _summaries._NextBlocks.close

    def closing(blocks: _summaries._NextBlocks) -> None:
        close(blocks)
        closed.set()

    monkeypatch.setattr(_summaries._NextBlocks, "close", closing)
    waited: list[bool] = []

    def before(mine: bool) -> None:
        if not mine:
            raise RuntimeError("a block of the pool's thread")
        if not waited:  # the caller's first block waits for the pool thread's raise to
            waited.append(True)  # close the blocks (not a sleep: under load the pool
            closed.wait(timeout=10)  # thread may start late); without close(), 10 s

    read = _wrapped_totals(monkeypatch, before)
    with pytest.raises(RuntimeError, match="pool's thread"):
        crossent.EvaluationState(10).update(probs, labels)
    assert read[True] <= 1  # without close(): the 15 blocks left


def test_issue13_next_blocks_each_block_once() -> None:
    blocks = _summaries._NextBlocks(20000)
    taken: list[list[int]] = [[] for _ in range(4)]
    start = threading.Barrier(4)

    def take(mine: list[int], front: bool) -> None:
        start.wait()
        mine.extend(blocks.taking(front=front))

    threads = [
        threading.Thread(target=take, args=(mine, t % 2 == 0)) for t, mine in enumerate(taken)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(block for mine in taken for block in mine) == list(range(20000))
    for t, mine in enumerate(taken):
        assert mine == sorted(mine, reverse=t % 2 == 1)
    closed = _summaries._NextBlocks(5)
    front, back = closed.taking(front=True), closed.taking(front=False)
    assert (next(front), next(back), next(front)) == (0, 4, 1)
    closed.close()
    assert list(front) == list(back) == []
