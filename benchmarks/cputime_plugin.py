"""A pytest plugin that writes each test's CPU and wall time, for CI-time profiles.

Load it with ``-p cputime_plugin`` (``benchmarks/`` on ``PYTHONPATH``) and set
``CPUTIME_DIR``: each process (each xdist worker) writes ``<worker>.tsv`` there, one line
per test: node id, CPU seconds of the process (user + system, :func:`time.process_time`:
child processes such as a C++ compiler are not counted), wall seconds. Summed by file::

    cat $CPUTIME_DIR/*.tsv | awk -F'\\t' '{split($1, a, "::"); c[a[1]] += $2} \\
        END {for (k in c) printf "%8.1f %s\\n", c[k], k}' | sort -rn
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator
from pathlib import Path

import pytest

_ROWS: list[tuple[str, float, float]] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    """Time one test's setup, call and teardown."""
    cpu, wall = time.process_time(), time.perf_counter()
    yield
    _ROWS.append((item.nodeid, time.process_time() - cpu, time.perf_counter() - wall))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write this process's rows to ``$CPUTIME_DIR/<worker>.tsv`` (nothing without it)."""
    folder = os.environ.get("CPUTIME_DIR")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    lines = "".join(f"{node}\t{cpu:.4f}\t{wall:.4f}\n" for node, cpu, wall in _ROWS)
    (Path(folder) / f"{worker}.tsv").write_text(lines)
