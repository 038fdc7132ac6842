"""pytest plugin: first compilations per test, Numba's and JAX's (issue 13, CI time).

Used by ``benchmarks/RESULTS.md``, "CI time: where the heaviest test files' CPU goes"::

    cd benchmarks/.. && PYTHONPATH=src:benchmarks TC1_TRACE=numba.tsv TC1_JAX=jax.tsv \
        python -m pytest -q -n 0 -p no:cacheprovider -p ci_compile_listeners FILES

``TC1_TRACE``: one line per top-level Numba compilation (``numba:compile`` events; a
kernel loaded from the cache raises none), ``test, function, signature, CPU seconds``.
``TC1_JAX``: per test and JAX monitoring event (``/jax/core/compile/...``), the count and
the summed duration (wall seconds, as JAX reports them). (Not ``NUMBA_TRACE``: that name
is Numba's own setting.)
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Iterator

import pytest
from numba.core import event

_current = ["<collection>"]
_numba: list[tuple[str, str, str, float]] = []
_jax_sum: dict[str, dict[str, float]] = collections.defaultdict(
    lambda: collections.defaultdict(float)
)
_jax_count: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)


class _NumbaCompiles(event.Listener):  # type: ignore[misc]  # (Numba is untyped)
    """The CPU of each top-level compilation (callees compiled inside it are its own)."""

    def __init__(self) -> None:
        self.depth = 0
        self.start = 0.0

    def on_start(self, ev: event.Event) -> None:
        if self.depth == 0:
            self.start = time.process_time()
        self.depth += 1

    def on_end(self, ev: event.Event) -> None:
        self.depth -= 1
        if self.depth == 0:
            function = ev.data["dispatcher"].py_func
            name = f"{function.__module__}.{function.__qualname__}"
            spent = time.process_time() - self.start
            _numba.append((_current[0], name, str(ev.data["args"]), spent))


def _jax_event(event: str, duration_secs: float, **kwargs: str | int) -> None:
    _jax_sum[_current[0]][event] += duration_secs
    _jax_count[_current[0]][event] += 1


event.register("numba:compile", _NumbaCompiles())
if os.environ.get("TC1_JAX"):
    import jax.monitoring

    jax.monitoring.register_event_duration_secs_listener(_jax_event)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    _current[0] = item.nodeid
    yield


def pytest_sessionfinish(session: pytest.Session) -> None:
    if path := os.environ.get("TC1_TRACE"):
        with open(path, "w") as out:
            for test, name, signature, spent in _numba:
                out.write(f"{test}\t{name}\t{signature}\t{spent:.3f}\n")
    if path := os.environ.get("TC1_JAX"):
        with open(path, "w") as out:
            for test, sums in _jax_sum.items():
                for name, spent in sums.items():
                    out.write(f"{test}\t{name}\t{_jax_count[test][name]}\t{spent:.3f}\n")
