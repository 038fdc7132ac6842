"""pytest plugin: the CPU the cyclic garbage collector takes during a test process's run
(issue 13, CI time; ``benchmarks/RESULTS.md``, "CI time: the collector's full passes").

    cd benchmarks/.. && CI=true GC_PASSES_MODE=tree GC_PASSES_OUT=gc.txt \\
        PYTHONPATH=src:benchmarks python -m pytest -q -n 0 -p no:cacheprovider \\
        -p ci_gc_passes FILES

``GC_PASSES_MODE``: ``tree`` runs the tests as ``tests/conftest.py`` has them (with this
branch's conftest: each full pass freezes what it leaves); ``main`` first takes
``freeze_after_full_collections`` out of :data:`gc.callbacks`, as main had it (the
objects collection left are frozen in both). One line per run is appended to
``GC_PASSES_OUT``: the collector's CPU (``time.process_time`` between its ``start`` and
``stop`` callbacks), the number and CPU of the passes per generation, the CPU of the
test loop, the frozen objects at the end and the peak RSS.
"""

from __future__ import annotations

import gc
import os
import resource
import time
from typing import Any

import pytest

_MODE = os.environ.get("GC_PASSES_MODE", "tree")
_state: dict[str, Any] = {"start": 0.0, "loop": None}
_count = [0, 0, 0]
_cpu = [0.0, 0.0, 0.0]


def _timed(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _state["start"] = time.process_time()
        return
    generation = info["generation"]
    _count[generation] += 1
    _cpu[generation] += time.process_time() - _state["start"]


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    if _MODE == "main":
        gc.callbacks[:] = [
            c for c in gc.callbacks if getattr(c, "__name__", "") != "freeze_after_full_collections"
        ]
    gc.callbacks.insert(0, _timed)  # (first: its stop is timed before any freeze)
    _state["loop"] = time.process_time()


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _state["loop"] is None:
        return
    loop = time.process_time() - _state["loop"]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    line = (
        f"{_MODE}: collector {sum(_cpu):.2f} s of {loop:.2f} s test-loop CPU; passes "
        f"{_count} (CPU {[round(c, 2) for c in _cpu]}); frozen {gc.get_freeze_count()}; "
        f"peak RSS {rss:.0f} MB\n"
    )
    with open(os.environ.get("GC_PASSES_OUT", "gc_passes.txt"), "a") as out:
        out.write(line)
