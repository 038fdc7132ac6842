"""Row blocks processed on every core, results in block order.

NumPy releases the GIL inside its loops, so threads speed up the per-block work of
evaluation (conversion, ``exp``, reductions) on a multi-core machine.  Results come back
in the order of the blocks and are combined in that order, so every number is the same
whatever the number of threads.  At most ``2 * workers`` blocks are in flight, which
bounds memory.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["ordered_map", "workers"]

_T = TypeVar("_T")
_R = TypeVar("_R")


def workers() -> int:
    """The number of threads: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def ordered_map(function: Callable[[_T], _R], items: Iterable[_T]) -> Iterator[_R]:
    """``map(function, items)`` on a thread pool, lazily, in order, with a bounded window."""
    count = workers()
    if count == 1:
        yield from map(function, items)
        return
    with ThreadPoolExecutor(max_workers=count) as pool:
        pending: deque[Future[_R]] = deque()
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= 2 * count:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
