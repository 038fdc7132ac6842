"""Issue 13: ``run_in_parts`` keeps the pool's threads off the caller's CPU while they run.

On the 2-core AMD EPYC (a KVM guest), Linux often woke the pool's thread on the
caller's own CPU: ``EvaluationState.update``'s two parts then shared one CPU (10.5 ms a
call instead of 5.5).  ``_parallel._off_the_caller`` lets the pool's threads run on
every CPU of the caller's but the one it is on, for the call only.

Pinned (Linux with two CPUs or more, else skipped): a part run by the pool may run on
the caller's CPUs but the one it was on (``_current_cpu``, fixed here so that the test
does not depend on where the scheduler puts the caller) while the caller's own part
runs, and on all of them once that part is done (the pool's part still running); after
the call, and after the caller's part raises, the pool's threads may run on all the
caller's CPUs; ``ordered_map``'s blocks are not restricted.  The parts' results are unchanged
(their order and values: ``tests/test_issue13_shared_pool.py``).

Mutants these fail on: no restriction (``_off_the_caller`` returning ``_nothing``
before setting anything: the first test); the restriction lifted only when every part
is done (the ``restore()`` after the caller's part left out: the first); not lifted
at all (both ``restore()`` calls left out: all three); not lifted when the caller's
part raises (the ``restore()`` in ``finally`` left out: the third).
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from crossent import _parallel

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux's sched_setaffinity and two CPUs",
)

TIMEOUT = 5.0
"""Seconds a part waits for the other before the test fails."""


def _affinity_of_this_thread(first: int, stop: int) -> tuple[bool, set[int]]:
    return threading.current_thread() is not threading.main_thread(), os.sched_getaffinity(0)


@pytest.fixture
def caller_on_first_cpu(monkeypatch: pytest.MonkeyPatch) -> int:
    """The caller's CPU as ``run_in_parts`` sees it: the lowest it may run on."""
    cpu = min(os.sched_getaffinity(0))
    monkeypatch.setattr(_parallel, "_current_cpu", lambda: cpu)
    monkeypatch.setattr(_parallel, "workers", lambda: 2)
    both = threading.Barrier(2, timeout=TIMEOUT)
    # both pool threads started (and known to _parallel): none is started, unrestricted,
    # by the test's own call
    list(_parallel.ordered_map(lambda _: both.wait(), range(2)))
    return cpu


def _pool_threads_affinity() -> list[set[int]]:
    return [
        os.sched_getaffinity(thread)
        for thread in _parallel._worker_ids.get((os.getpid(), 2), [])
        if os.path.exists(f"/proc/self/task/{thread}")
    ]


def test_issue13_pool_part_runs_off_the_callers_cpu(caller_on_first_cpu: int) -> None:
    allowed = os.sched_getaffinity(0)
    seen = threading.Event()

    def part(first: int, stop: int) -> tuple[set[int], set[int]]:
        if first == 0:  # the caller's: ends once the pool's part has seen its CPUs
            assert seen.wait(TIMEOUT)
            return os.sched_getaffinity(0), set()
        during = os.sched_getaffinity(0)
        seen.set()
        deadline = time.monotonic() + TIMEOUT
        while os.sched_getaffinity(0) != allowed and time.monotonic() < deadline:
            time.sleep(0.001)  # the caller's part is done: its CPU is allowed again
        return during, os.sched_getaffinity(0)

    (caller, _), (during, after) = _parallel.run_in_parts(part, 2)
    assert caller == allowed  # the caller's own thread: untouched
    assert during == allowed - {caller_on_first_cpu}
    assert after == allowed


def test_issue13_pool_threads_set_back_after_the_call(caller_on_first_cpu: int) -> None:
    allowed = os.sched_getaffinity(0)
    _parallel.run_in_parts(_affinity_of_this_thread, 2)
    assert _pool_threads_affinity()
    assert all(cpus == allowed for cpus in _pool_threads_affinity())
    mapped = list(_parallel.ordered_map(lambda _: os.sched_getaffinity(0), range(4)))
    assert mapped == [allowed] * 4


def test_issue13_pool_threads_set_back_after_caller_part_raises(caller_on_first_cpu: int) -> None:
    allowed = os.sched_getaffinity(0)

    def fail_in_caller(first: int, stop: int) -> None:
        if first == 0:  # the caller's own part
            raise RuntimeError("part failed")

    with pytest.raises(RuntimeError, match="part failed"):
        _parallel.run_in_parts(fail_in_caller, 2)
    assert _pool_threads_affinity()
    assert all(cpus == allowed for cpus in _pool_threads_affinity())
