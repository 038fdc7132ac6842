"""A pytest plugin that writes each Numba compilation a test caused, for CI-time profiles.

Load it with ``-p numba_compiles_plugin`` (``benchmarks/`` on ``PYTHONPATH``) and set
``NUMBA_COMPILES_OUT`` to a file: one line per outermost compilation (a cache miss of a
dispatcher; the callees compiled inside it are counted in its time), tab-separated:
test node id, CPU seconds of the compilation (:func:`time.process_time`), the kernel's
module and name, its argument types. Cache hits are not compilations and are not listed.
Summed by test file::

    awk -F'\\t' '{split($1, a, "::"); c[a[1]] += $2} END {for (k in c) printf "%8.1f %s\\n",
        c[k], k}' $NUMBA_COMPILES_OUT | sort -rn

A signature listed under one test only is one that test alone compiles in the run it was
measured in (which depends on the cache it started from and the tests before it).

With ``NUMBA_COMPILES_LOADS=1`` the loads from the cache are listed too (CPU column
``load``): run on a full cache, they say which tests need a signature at all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator
from typing import Any

import pytest

_STATE: dict[str, Any] = {"test": "(collection)", "depth": 0, "start": 0.0, "rows": []}


def _listener() -> Any:
    from numba.core import event

    class _Compiles(event.Listener):  # type: ignore[misc]
        def on_start(self, ev: Any) -> None:
            if _STATE["depth"] == 0:
                _STATE["start"] = time.process_time()
            _STATE["depth"] += 1

        def on_end(self, ev: Any) -> None:
            _STATE["depth"] -= 1
            if _STATE["depth"] == 0:
                data = ev.data or {}
                dispatcher = data.get("dispatcher")
                py_func = getattr(dispatcher, "py_func", None)
                name = (
                    f"{getattr(py_func, '__module__', '?')}.{getattr(py_func, '__qualname__', '?')}"
                )
                args = ", ".join(str(a) for a in data.get("args", ()))
                took = time.process_time() - _STATE["start"]
                _STATE["rows"].append((_STATE["test"], took, name, args))

    return _Compiles()


def pytest_configure(config: pytest.Config) -> None:
    try:
        from numba.core import caching, event
    except ImportError:
        return
    event.register("numba:compile", _listener())
    if os.environ.get("NUMBA_COMPILES_LOADS"):
        load = caching.Cache.load_overload

        def load_overload(self: Any, sig: Any, target_context: Any) -> Any:
            result = load(self, sig, target_context)
            if result is not None:
                func = getattr(self, "_py_func", None)
                name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', '?')}"
                args = ", ".join(str(a) for a in getattr(sig, "args", sig))
                _STATE["rows"].append((_STATE["test"], "load", name, args))
            return result

        caching.Cache.load_overload = load_overload


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Any) -> Generator[None, Any, Any]:
    _STATE["test"] = item.nodeid
    try:
        return (yield)
    finally:
        _STATE["test"] = "(between tests)"


def pytest_unconfigure(config: pytest.Config) -> None:
    out = os.environ.get("NUMBA_COMPILES_OUT")
    if not out or not _STATE["rows"]:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        out = f"{out}.{worker}"
    with open(out, "a") as f:
        for test, took, name, args in _STATE["rows"]:
            cpu = took if isinstance(took, str) else f"{took:.3f}"
            f.write(f"{test}\t{cpu}\t{name}\t{args}\n")
