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
  per thread, the first in the caller's thread (the loss kernels, the measures).

The threads are started on first use and kept: starting a pool and its threads for
every call cost about 0.35 ms (2-core AMD EPYC), a twentieth of a metric over
10^6 x 10 float32 probabilities. A call from one of the pool's own threads (a
bootstrap's resample that maps blocks, a calibration block that evaluates a large
loss) runs all its work in that thread, in order: waiting on the shared pool from one
of its threads could wait forever. A process forked after the pool started starts its
own (the parent's threads do not exist in the child).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypeVar

__all__ = ["ordered_map", "run_in_parts", "workers"]

_T = TypeVar("_T")
_R = TypeVar("_R")

_lock = threading.Lock()
_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
"""The shared pool by (process id, threads)."""
_local = threading.local()


def workers() -> int:
    """The number of threads: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _mark_worker() -> None:
    _local.worker = True


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
                max_workers=count, thread_name_prefix="crossent", initializer=_mark_worker
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
    rest = [pool.submit(work, bounds[k], bounds[k + 1]) for k in range(1, parts)]
    try:
        first = work(bounds[0], bounds[1])
        return [first, *(future.result() for future in rest)]
    finally:
        for future in rest:
            future.cancel()
        wait(rest)
