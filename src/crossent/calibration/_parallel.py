"""Row blocks processed on every core, results in block order.

NumPy releases the GIL inside its loops, so threads speed up the per-block work of
evaluation (conversion, ``exp``, reductions) on a multi-core machine.  Results come back
in the order of the blocks and are combined in that order, so every number is the same
whatever the number of threads.  At most ``2 * workers`` blocks are in flight, which
bounds memory.

The threads are one pool per process, started on first use and kept: starting a pool
and its threads for every call cost about 0.35 ms (2-core AMD EPYC), a twentieth of a
metric over 10^6 x 10 float32 probabilities.  A block that itself maps blocks (a
bootstrap's resample, say) runs its blocks in its own thread, in order: waiting on
the shared pool from one of its threads could wait forever.  A process forked after
the pool started starts its own.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypeVar

__all__ = ["ordered_map", "workers"]

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
    """``map(function, items)`` on a thread pool, lazily, in order, with a bounded window.

    When the caller stops early (an exception from a block, or a consumer that stops
    reading), the blocks not started are cancelled and those running are waited for
    before the exception goes on, as when each call had its own pool."""
    count = workers()
    if count == 1 or getattr(_local, "worker", False):
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
