"""Issue 13, evaluation speed: the blocks of every call run on one thread pool per
process (``_parallel.ordered_map``), not a pool started per call (about 0.35 ms each).
Pinned: results in block order; the same threads serve later calls; a block that maps
blocks itself runs them in its own thread (no deadlock on the shared pool); an error
in a block reaches the caller after the blocks in flight finish, the rest cancelled;
a forked child starts its own pool."""

from __future__ import annotations

import multiprocessing
import threading
import time
import warnings

import numpy as np
import pytest

import crossent
from crossent import _parallel


@pytest.fixture
def two_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_parallel, "workers", lambda: 2)


def _slow_square(x: int) -> int:
    time.sleep(0.001 * (x % 3))  # out-of-order finishes
    return x * x


@pytest.mark.usefixtures("two_threads")
def test_issue13_shared_pool_keeps_order_and_threads() -> None:
    assert list(_parallel.ordered_map(_slow_square, range(40))) == [x * x for x in range(40)]
    names = set(_parallel.ordered_map(lambda _: threading.current_thread().name, range(20)))
    again = set(_parallel.ordered_map(lambda _: threading.current_thread().name, range(20)))
    assert names | again <= {t.name for t in threading.enumerate()}
    assert all(name.startswith("crossent") for name in names | again)
    assert len(names | again) <= 2  # the same two threads, both calls


@pytest.mark.usefixtures("two_threads")
def test_issue13_nested_maps_run_in_the_worker_without_deadlock() -> None:
    def outer(x: int) -> list[int]:
        return list(_parallel.ordered_map(lambda y: x * 100 + y, range(5)))

    done: list[list[list[int]]] = []
    thread = threading.Thread(
        target=lambda: done.append(list(_parallel.ordered_map(outer, range(8))))
    )
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "nested ordered_map deadlocked"
    assert done[0] == [[x * 100 + y for y in range(5)] for x in range(8)]


@pytest.mark.usefixtures("two_threads")
def test_issue13_error_in_a_block_waits_for_running_blocks_and_cancels_the_rest() -> None:
    started: list[int] = []
    finished: list[int] = []

    def block(x: int) -> int:
        started.append(x)
        if x == 2:
            raise ValueError("block 2")
        time.sleep(0.02)
        finished.append(x)
        return x

    with pytest.raises(ValueError, match="block 2"):
        list(_parallel.ordered_map(block, range(50)))
    assert sorted(finished) == sorted(x for x in started if x != 2)  # none still running
    assert len(started) <= 8  # the window: later blocks never started


def _child_nll(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(300_000, 10))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    queue.put(crossent.negative_log_likelihood(probs, rng.integers(0, 10, size=300_000)))


@pytest.mark.usefixtures("two_threads")
def test_issue13_forked_child_starts_its_own_pool() -> None:
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork")
    list(_parallel.ordered_map(_slow_square, range(10)))  # the parent's pool exists
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_nll, args=(queue,))
    with warnings.catch_warnings():
        # JAX's at-fork hook warns on every fork once JAX is imported (another test in
        # this worker may have); this child never touches JAX.
        warnings.filterwarnings("ignore", r"os\.fork\(\) was called", RuntimeWarning)
        child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    value = queue.get(timeout=5)
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(300_000, 10))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert value == crossent.negative_log_likelihood(probs, rng.integers(0, 10, size=300_000))
