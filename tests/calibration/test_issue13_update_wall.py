"""Issue 13, ``EvaluationState.update``'s wall time: the blocks of stored probabilities
(``Predictions.map_stored``: the update, NLL, Brier and ECE sums) are computed by the
caller's thread too (``_parallel.ordered_map_with_caller``), not by the pool alone while
the caller waits, so a call on two cores runs on both without a third thread to wake
for every block.  Threads change the speed, never the numbers or the errors.

Pinned here: ``ordered_map_with_caller`` gives ``map``'s results in order, the caller's
thread computing items; the first item that raised raises when its turn comes, even
when a later one failed sooner, after the results before it, and the items after it
are not started once it failed; a consumer that stops early waits for the running
items.  ``EvaluationState.update`` over many blocks of float32 probabilities (the
blocks made small) gives the same bits on 1, 2 and 3 threads, and its NLL, Brier score
and mean entropy agree with a float64 oracle (``math.fsum`` of NumPy's terms); a
label out of range with ``validate=False`` in two blocks names the first block's; a
bad entry in a late block, the same message on one thread and two.

Mutants these fail on: results read in the order they finish instead of the items'
(``concurrent.futures.as_completed``): the order and the error tests, and the update's
bits (the block sums added in another order); the caller waiting instead of computing
(``while False and ...``): the caller's-share test; a failure that does not stop the
taking of items (``stopped.set()`` removed): the not-started test.
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

import crossent
from crossent import _parallel
from crossent.calibration import _inputs


def _slow_square(delays: dict[int, float], threads: list[int]) -> object:
    def square(item: int) -> int:
        threads.append(threading.get_ident())
        time.sleep(delays.get(item, 0.002))
        return item * item

    return square


def test_issue13_update_wall_map_with_caller_order_and_callers_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_parallel, "workers", lambda: 2)
    threads: list[int] = []
    items = list(range(12))
    got = list(_parallel.ordered_map_with_caller(_slow_square({0: 0.03}, threads), items))
    assert got == [item * item for item in items]
    assert len(threads) == len(items)
    assert threading.get_ident() in threads  # the caller computed items too
    assert len(set(threads)) == 2


def test_issue13_update_wall_map_with_caller_one_thread_is_map(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_parallel, "workers", lambda: 1)
    threads: list[int] = []
    assert list(_parallel.ordered_map_with_caller(_slow_square({}, threads), range(5))) == [
        0,
        1,
        4,
        9,
        16,
    ]
    assert set(threads) == {threading.get_ident()}


class _Failed(Exception):
    pass


@pytest.mark.parametrize("threads", [2, 3])
def test_issue13_update_wall_map_with_caller_first_error_in_order(
    monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    """Item 1 fails late, item 2 at once: item 1's error, after item 0's result."""
    monkeypatch.setattr(_parallel, "workers", lambda: threads)
    started: list[int] = []

    def work(item: int) -> int:
        started.append(item)
        if item == 1:
            time.sleep(0.05)
            raise _Failed("item 1")
        if item == 2:
            raise _Failed("item 2")
        return item

    read: list[int] = []
    with pytest.raises(_Failed, match="item 1"):
        read.extend(_parallel.ordered_map_with_caller(work, list(range(40))))
    assert read == [0]
    assert len(started) < 40  # no item taken after a failure


def test_issue13_update_wall_map_with_caller_early_stop_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_parallel, "workers", lambda: 2)
    running = [0]
    lock = threading.Lock()

    def work(item: int) -> int:
        with lock:
            running[0] += 1
        time.sleep(0.005)
        with lock:
            running[0] -= 1
        return item

    mapped = _parallel.ordered_map_with_caller(work, list(range(20)))
    assert next(mapped) == 0
    mapped.close()  # the consumer stops: the running items are waited for
    assert running[0] == 0


def _probabilities(rows: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(rows, classes)) * 2.5
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    labels = rng.integers(0, classes, size=rows)
    return p.astype(np.float32), labels


def _state_bits(state: crossent.EvaluationState) -> tuple[object, ...]:
    return (
        state.n,
        state._sums.tobytes(),
        state._class_count.tobytes(),
        state._class_surprisal.tobytes(),
        state._bins.count.tobytes(),
        state._bins.confidence_sum.tobytes(),
        state._bins.hits.tobytes(),
        state._surprising,
    )


@pytest.mark.parametrize("classes", [10, 37])
def test_issue13_update_wall_same_bits_on_any_threads_and_float64_oracle(
    monkeypatch: pytest.MonkeyPatch, classes: int
) -> None:
    monkeypatch.setattr(_inputs, "_BLOCK_ELEMENTS", 4096)  # many small blocks
    probs, labels = _probabilities(3001, classes, seed=classes)
    runs = {}
    for threads in (1, 2, 3):
        monkeypatch.setattr(_parallel, "workers", lambda threads=threads: threads)
        state = crossent.EvaluationState(classes, keep=7)
        state.update(probs[:1000], labels[:1000]).update(probs[1000:], labels[1000:])
        runs[threads] = _state_bits(state)
    assert runs[1] == runs[2] == runs[3]

    summary = state.compute()
    p = probs.astype(np.float64)
    rows = np.arange(p.shape[0])
    p_label = p[rows, labels]
    terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    brier = (p**2).sum(axis=1) - p_label**2 + (1 - p_label) ** 2
    n = p.shape[0]
    assert math.isclose(summary.nll, math.fsum(-np.log(p_label)) / n, rel_tol=1e-12)
    assert math.isclose(summary.brier, math.fsum(brier) / n, rel_tol=1e-12)
    assert math.isclose(summary.mean_entropy, math.fsum(terms.ravel()) / n, rel_tol=1e-12)
    surprising = np.lexsort((rows, np.log(p_label)))[:7]
    assert [row for row, _ in summary.most_surprising] == surprising.tolist()


def test_issue13_update_wall_first_bad_block_names_its_label(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """validate=False: the kernel's IndexError names the row within the first bad block."""
    monkeypatch.setattr(_inputs, "_BLOCK_ELEMENTS", 1000)  # blocks of 100 rows
    monkeypatch.setattr(_parallel, "workers", lambda: 2)
    probs, labels = _probabilities(2000, 10, seed=3)
    labels[1050] = 10  # block 10, row 50
    labels[1903] = 12  # block 19, row 3
    with pytest.raises(IndexError, match="label 10 of row 50 "):
        crossent.EvaluationState(10).update(probs, labels, validate=False)


def test_issue13_update_wall_bad_entry_same_error_on_one_and_two_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_inputs, "_BLOCK_ELEMENTS", 1000)
    probs, labels = _probabilities(2000, 10, seed=4)
    probs[1777, 3] = np.nan
    messages = []
    for threads in (1, 2):
        monkeypatch.setattr(_parallel, "workers", lambda threads=threads: threads)
        with pytest.raises(crossent.InputError) as error:
            crossent.EvaluationState(10).update(probs, labels)
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    assert "1777" in messages[0]
