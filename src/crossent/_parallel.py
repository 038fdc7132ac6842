"""The process's thread pool: row blocks processed on every core, results in order.

NumPy releases the GIL inside its loops, and the compiled kernels (``nogil``) in theirs,
so threads speed up the per-block work of evaluation, of the NumPy loss kernels and of
the measures' blocked path on a multi-core machine. Every caller combines the results
in the order of the blocks or parts, and a row's result does not depend on the part it
falls in, so every number is the same whatever the number of threads.

:func:`workers` is the one thread count: the CPUs this process may run on (its
affinity mask, as ``taskset`` or a container's ``cpuset`` sets it), which is also
Numba's default ``NUMBA_NUM_THREADS``. A caller may ask for fewer parts (the measures'
Numba kernels keep Numba's own limit, see ``info._fused``), never more.

Two helpers share one pool of :func:`workers` threads per process:

* :func:`ordered_map`: ``map`` over an iterable of blocks, lazily, with at most
  ``2 * workers`` blocks in flight, which bounds memory (calibration's evaluation, the
  bootstrap's resamples);
* :func:`run_in_parts`: ``work(first, stop)`` over contiguous parts of the rows, one
  per thread, the first in the caller's thread (the loss kernels, the measures);
* :func:`start_beside`: ``work()`` on the pool's other threads, the caller's own part
  and the waiting left to the caller (calibration's stacked blocks, whose caller takes
  over a block that a descheduled pool thread holds instead of waiting for it).

The threads are started on first use and kept: starting a pool and its threads for
every call cost about 0.35 ms (2-core AMD EPYC), a twentieth of a metric over
10^6 x 10 float32 probabilities. A call from one of the pool's own threads (a
bootstrap's resample that maps blocks, a calibration block that evaluates a large
loss) runs all its work in that thread, in order: waiting on the shared pool from one
of its threads could wait forever. A process forked after the pool started starts its
own (the parent's threads do not exist in the child).

While :func:`run_in_parts` runs, the pool's threads may run on every CPU of the caller's
but the one the caller's thread is on (:func:`_off_the_caller`), so that its parts run
beside the caller's, not on its CPU.  Measured on the 2-core AMD EPYC (a KVM guest),
10^6 x 10 float32, ``EvaluationState.update``: the worker was woken on the caller's own
CPU in a quarter to most of the calls, started 1 to 3 ms late, and the two parts then
shared that CPU while the other stayed idle (10.5 ms a call instead of 5.5); the
threads' affinity is set back to the caller's when the caller's own part ends (a part
on a CPU that another process keeps busy may then move to the caller's, which only
waits; and :func:`ordered_map`'s blocks, whose caller only waits, use every CPU).
Against no restriction, in one process, alternating (``bench_evaluation``'s data and
contenders, 2026-12-03, runs started on a machine at least 97% idle; other engineers'
work came and went): calls over 8 ms 3 of 15 and 2 of 21 unrestricted, 0 and 0
restricted; medians 5.79 and 6.82 ms against 5.84 and 6.49, means 6.88 and 7.10
against 5.85 and 6.56 (the fast calls the same); one CPU busy with other work, 21 of
21 calls over 8 ms against 3 of 21 (median 10.61 against 5.76 ms).  The cost: 4 us a
call (two system calls a pool thread and ``sched_getcpu``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypeVar

__all__ = ["ordered_map", "run_in_parts", "start_beside", "workers"]

_T = TypeVar("_T")
_R = TypeVar("_R")

_lock = threading.Lock()
_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
"""The shared pool by (process id, threads)."""
_local = threading.local()
_worker_ids: dict[tuple[int, int], list[int]] = {}
"""The native thread ids of each pool's threads, by the pool's key (as ``_pools``)."""


def workers() -> int:
    """The number of threads: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _mark_worker(key: tuple[int, int]) -> None:
    _local.worker = True
    with _lock:
        _worker_ids.setdefault(key, []).append(threading.get_native_id())


def _threads() -> int:
    """:func:`workers`, or 1 in one of the pool's threads (nested work runs in it)."""
    return 1 if getattr(_local, "worker", False) else workers()


def _pool(count: int) -> ThreadPoolExecutor:
    """This process's pool of ``count`` threads (started on first use)."""
    key = (os.getpid(), count)
    with _lock:
        pool = _pools.get(key)
        if pool is None:
            pool = ThreadPoolExecutor(
                max_workers=count,
                thread_name_prefix="crossent",
                initializer=_mark_worker,
                initargs=(key,),
            )
            _pools[key] = pool
        return pool


def ordered_map(function: Callable[[_T], _R], items: Iterable[_T]) -> Iterator[_R]:
    """``map(function, items)`` on the pool, lazily, in order, with a bounded window.

    When the caller stops early (an exception from a block, or a consumer that stops
    reading), the blocks not started are cancelled and those running are waited for
    before the exception goes on, as when each call had its own pool."""
    count = _threads()
    if count == 1:
        yield from map(function, items)
        return
    pool = _pool(count)
    pending: deque[Future[_R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= 2 * count:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        wait(pending)


def run_in_parts(work: Callable[[int, int], _R], rows: int, most: int | None = None) -> list[_R]:
    """``[work(first, stop), ...]`` over contiguous parts of ``range(rows)``, in order.

    Parameters
    ----------
    work : callable
        ``work(first, stop)`` processes rows ``first`` to ``stop - 1``.
    rows : int
        The number of rows.
    most : int, optional
        At most this many parts (1: all the rows in the caller's thread); by default
        one per thread.

    Returns
    -------
    list
        The parts' results, in the order of the rows: ``min(most, workers(), rows)``
        parts of balanced sizes, one part (all the rows) when called from one of the
        pool's threads. The first part runs in the caller's thread, the others on the
        pool; when one raises, those not started are cancelled and those running
        waited for before the exception goes on (they may write into the caller's
        arrays).
    """
    if most == 1 or rows <= 1:
        return [work(0, rows)]
    count = _threads()
    parts = min(count, rows, count if most is None else most)
    if parts <= 1:
        return [work(0, rows)]
    bounds = [rows * k // parts for k in range(parts + 1)]
    pool = _pool(count)
    restore = _off_the_caller(_worker_ids.get((os.getpid(), count), []))
    rest = [pool.submit(work, bounds[k], bounds[k + 1]) for k in range(1, parts)]
    try:
        first = work(bounds[0], bounds[1])
        restore()  # the caller's CPU now only waits: a part delayed elsewhere may move there
        results = [first, *(future.result() for future in rest)]
    except BaseException:  # (on success every part is done: nothing to cancel or wait for)
        for future in rest:
            future.cancel()
        wait(rest)
        restore()
        raise
    return results


def start_beside(
    work: Callable[[], object], parts: int
) -> tuple[list[Future[object]], Callable[[], None]]:
    """Start ``work()`` on ``min(parts, workers()) - 1`` of the pool's threads, kept off
    the caller's CPU as :func:`run_in_parts`' parts are (:func:`_off_the_caller`).

    Returns the futures (none in one of the pool's own threads, on one CPU, or for
    ``parts`` below 2: the caller then does all the work) and what sets the threads'
    CPUs back, to be called once the caller's own part is done (the last pool thread to
    end its ``work`` calls it too: the caller's call is then nothing).  Unlike
    :func:`run_in_parts`, nothing here waits: the caller does its part in its own
    thread and knows, from the work's own bookkeeping, when everything is done, so it
    need not wait for a pool thread that has nothing left to do but is not yet (or no
    longer) running on a busy machine; it should ``cancel`` the futures then (one not
    started never runs) and, when it raises, wait for them (they may write into its
    arrays).
    """
    count = _threads()
    beside = min(count, parts) - 1
    if beside < 1:
        return [], _nothing
    pool = _pool(count)
    restore = _off_the_caller(_worker_ids.get((os.getpid(), count), []))
    if restore is _nothing:
        return [pool.submit(work) for _ in range(beside)], restore
    left = [beside]

    def work_then_restore() -> object:
        # the last pool thread to end its work sets the CPUs back itself, so that the
        # caller's own call finds it done where the pool ended first (as the stacked
        # blocks' pool does, reading the shorter last block: 15-25 us of system calls
        # off the caller's path, cold, 10^6 x 10; issue 13, branch upd16)
        try:
            return work()
        finally:
            with _lock:
                left[0] -= 1
                last = left[0] == 0
            if last:
                restore()

    return [pool.submit(work_then_restore) for _ in range(beside)], restore


def _off_the_caller(threads: list[int]) -> Callable[[], None]:
    """Let ``threads`` (native ids) run on the calling thread's CPUs but the one it is on
    now; returns what sets them back to all the caller's CPUs (once, however often
    called).  :func:`run_in_parts` sets them back as soon as the caller's own part is
    done: a part that another process slows on its CPU may then move to the caller's.

    Best effort, for speed only: nothing is changed where the platform cannot say or
    set a thread's CPU, where the caller may run on one CPU only, or before the pool's
    threads exist (its first call).  Linux wakes a thread on the waker's CPU when it
    finds no other idle one (``select_idle_sibling``), which on a KVM guest it often
    does not (see the module's docstring); a thread that may not run there is woken
    on another, at once.
    """
    cpu = _current_cpu()
    if not threads or cpu is None:
        return _nothing
    allowed = os.sched_getaffinity(0)
    elsewhere = allowed - {cpu}
    if not elsewhere:
        return _nothing
    _set_affinity(threads, elsewhere)
    done: list[bool] = []

    def restore() -> None:  # (once: run_in_parts calls it twice)
        if not done:
            done.append(True)
            _set_affinity(threads, allowed)

    return restore


def _set_affinity(threads: list[int], cpus: set[int]) -> None:
    for thread in threads:
        # (an error: a thread gone, or a sandbox that forbids it; speed only, so go on)
        with contextlib.suppress(OSError):
            os.sched_setaffinity(thread, cpus)


def _nothing() -> None:
    pass


def _current_cpu() -> int | None:
    """The CPU the calling thread runs on (glibc's or musl's ``sched_getcpu``), or None."""
    getcpu = _getcpu()
    if getcpu is None:
        return None
    cpu = int(getcpu())
    return cpu if cpu >= 0 else None


_GETCPU: list[Callable[[], int] | None] = []
"""``sched_getcpu`` from the C library, once looked up (``[None]`` where there is none)."""


def _getcpu() -> Callable[[], int] | None:
    if not _GETCPU:
        function = None
        if hasattr(os, "sched_setaffinity"):  # Linux
            try:
                function = ctypes.CDLL(None).sched_getcpu
                function.restype, function.argtypes = ctypes.c_int, []
            except (OSError, AttributeError):  # pragma: no cover - no such C library
                function = None
        _GETCPU.append(function)
    return _GETCPU[0]
