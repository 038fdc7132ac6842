"""Issue 13 (branch upd16): ``EvaluationState.update``'s fixed cost around its kernel.

Three steps left the caller's path of a stacked ``update`` (10^6 x 10 float32: the
caller reads five full blocks, the pool four and the short last one, so the pool
usually ends first):

* ``_parallel.start_beside``: the last pool thread to end its work sets the pool's
  CPUs back itself (``_off_the_caller``'s restore), so that the caller's own call to
  restore, after its blocks, is nothing where the pool ended first;
* ``_row_kernels.merge_blocks`` takes ``BlocksTotals.padded`` (the C-contiguous rows
  whose first columns ``running`` is) instead of checking ``running.base`` with
  cold-cache ``flags`` and ``ctypes`` calls: the same kernel call, the same bits;
* ``EvaluationState._request``: one ``TotalsRequest`` per key (``functools.lru_cache``).

Pinned: the pool thread's CPUs are all the caller's again once its work has ended,
before the caller calls restore (fails on main, which sets them back only in the
caller's restore); ``restore`` after that still leaves them so; ``merge_blocks`` with
and without ``padded`` gives the same bits, and ``BlocksTotals.padded`` holds
``running`` (fails on main: no such field); equal requests for equal keys, distinct
ones otherwise (a guard: passes on main).  No new Numba signature: the merge kernel's
one signature, compiled (or read from the cache) by ``update`` anyway.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

import crossent
from crossent import _parallel
from crossent.calibration import _row_kernels

TIMEOUT = 5.0
"""Seconds the test waits for the pool's thread before it fails."""

affinity = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux's sched_setaffinity and two CPUs",
)


@pytest.fixture
def caller_on_first_cpu(monkeypatch: pytest.MonkeyPatch) -> int:
    """The caller's CPU as ``start_beside`` sees it: the lowest it may run on (as in
    tests/test_issue13_pool_placement.py), both pool threads started."""
    cpu = min(os.sched_getaffinity(0))
    monkeypatch.setattr(_parallel, "_current_cpu", lambda: cpu)
    monkeypatch.setattr(_parallel, "workers", lambda: 2)
    both = threading.Barrier(2, timeout=TIMEOUT)
    list(_parallel.ordered_map(lambda _: both.wait(), range(2)))
    return cpu


def _pool_threads_affinity() -> list[set[int]]:
    return [
        os.sched_getaffinity(thread)
        for thread in _parallel._worker_ids.get((os.getpid(), 2), [])
        if os.path.exists(f"/proc/self/task/{thread}")
    ]


@affinity
def test_pool_thread_sets_its_cpus_back_when_its_work_ends_first(
    caller_on_first_cpu: int,
) -> None:
    allowed = os.sched_getaffinity(0)
    during: list[set[int]] = []

    def work() -> None:
        during.append(os.sched_getaffinity(0))

    futures, restore = _parallel.start_beside(work, 2)
    assert len(futures) == 1
    futures[0].result(timeout=TIMEOUT)
    assert during == [allowed - {caller_on_first_cpu}]  # (kept off the caller's CPU)
    deadline = time.monotonic() + TIMEOUT  # (the future is done before its finally ends)
    while _pool_threads_affinity() != [allowed, allowed] and time.monotonic() < deadline:
        time.sleep(0.001)
    assert _pool_threads_affinity() == [allowed, allowed]  # before the caller's restore
    restore()  # (then nothing: set back once)
    assert _pool_threads_affinity() == [allowed, allowed]


def _stacked_update_inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(13)
    probs = rng.dirichlet(np.full(6, 0.3), size=64).astype(np.float32)
    return probs, rng.integers(0, 6, size=64)


def test_merge_blocks_with_padded_rows_is_the_same_call() -> None:
    """``BlocksTotals.padded`` holds ``running`` as its first columns, and the merge
    given those rows returns the bits it finds without them."""
    blocks = _row_kernels.BlocksTotals.empty(3, 6, 15, 4)
    assert blocks.padded is not None
    assert blocks.running.base is blocks.padded
    assert blocks.padded.flags.c_contiguous
    assert blocks.padded.shape[0] == blocks.running.shape[0]
    width = blocks.running.shape[1]
    assert np.shares_memory(blocks.padded[:, :width], blocks.running)
    rng = np.random.default_rng(5)
    blocks.running[...] = rng.standard_normal(blocks.running.shape) * 1e3
    blocks.running[:, :6] = rng.integers(0, 50, size=(4, 6))  # the class counts
    blocks.found[...] = rng.integers(-1, 20, size=blocks.found.shape)
    blocks.found_p[...] = rng.uniform(0.0, 1.0, size=blocks.found_p.shape)
    arguments = (
        blocks.running,
        6,
        2 * 6 + 5,
        True,
        np.arange(6, dtype=np.intp),
        blocks.found,
        blocks.found_p,
        [0, 20, 40, 60],
        4,
    )
    found = _row_kernels.merge_blocks(*arguments)
    given = _row_kernels.merge_blocks(*arguments, padded=blocks.padded)
    assert [a.tobytes() for a in given] == [a.tobytes() for a in found]


def test_state_requests_one_per_key() -> None:
    """A guard: the cached request is the one the key asks for."""
    state = crossent.EvaluationState(6, keep=3)
    assert state._request(15, rows=2) == state._request(15, rows=2)
    assert state._request(15, rows=2).keep == 2
    assert state._request(15).keep == 3
    assert state._request(0).bins == 0
    without = crossent.EvaluationState(6, keep=3, entropy=False)
    assert without._request(15).entropy is False
    assert state._request(15).entropy is True
    probs, labels = _stacked_update_inputs()
    assert state.update(probs, labels).n == 64  # (still reads)
