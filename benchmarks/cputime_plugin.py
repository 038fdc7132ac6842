"""A pytest plugin that writes each test's CPU and wall time, for CI-time profiles.

Load it with ``-p cputime_plugin`` (``benchmarks/`` on ``PYTHONPATH``) and set
``CPUTIME_DIR``: each process (each xdist worker) writes ``<worker>.tsv`` there, one line
per test: node id, CPU seconds of the process (user + system, :func:`time.process_time`),
wall seconds, and CPU seconds of its child processes during the test. Summed by file::

    cat $CPUTIME_DIR/*.tsv | awk -F'\\t' '{split($1, a, "::"); c[a[1]] += $2 + $4} \\
        END {for (k in c) printf "%8.1f %s\\n", c[k], k}' | sort -rn

The children's column is what :func:`time.process_time` leaves out: the C++ compiler that
Inductor (``torch.compile``'s default backend) runs, spawned ranks (through their fork
server), a test's own subprocesses. It is the growth, over the test, of

    T = (CPU of the ended children this process waited for: ``RUSAGE_CHILDREN``)
        + sum over the live descendants of (their own CPU + that of their ended children)

(``/proc``; Linux, else the first term only; 0 on Windows). A child that ends during the
test moves its CPU from the second term to the first, and a grandchild's to its live
parent's, so each second is counted once whichever way its process ended. Not counted: a
descendant that outlived its parent (re-parented to ``init``) and a process started and
ended by such a one; CPU a long-lived child spent between tests goes to the test after it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator
from pathlib import Path

import pytest

_ROWS: list[tuple[str, float, float, float]] = []
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _descendants_cpu(pid: int) -> float:
    """CPU seconds of ``pid``'s live descendants, each with its waited-for ended children
    (``/proc/<pid>/stat``: utime, stime, cutime, cstime); 0 where ``/proc`` does not say."""
    total = 0.0
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    kids = [int(k) for k in f.read().split()]
            except OSError:
                continue
            for kid in kids:
                try:
                    with open(f"/proc/{kid}/stat") as f:
                        stat = f.read()
                except OSError:
                    continue
                fields = stat[stat.rindex(")") + 2 :].split()
                # fields[0] is the state (field 3); utime..cstime are fields 14-17
                total += sum(int(x) for x in fields[11:15]) / _TICK
                pending.append(kid)
    return total


def children_cpu() -> float:
    """CPU seconds of this process's children so far, ended and live (the module's
    docstring: ``T``)."""
    try:
        import resource
    except ImportError:  # Windows: not measured
        return 0.0
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime + _descendants_cpu(os.getpid())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    """Time one test's setup, call and teardown."""
    cpu, wall, kids = time.process_time(), time.perf_counter(), children_cpu()
    yield
    _ROWS.append(
        (
            item.nodeid,
            time.process_time() - cpu,
            time.perf_counter() - wall,
            children_cpu() - kids,
        )
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write this process's rows to ``$CPUTIME_DIR/<worker>.tsv`` (nothing without it)."""
    folder = os.environ.get("CPUTIME_DIR")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    lines = "".join(
        f"{node}\t{cpu:.4f}\t{wall:.4f}\t{kids:.4f}\n" for node, cpu, wall, kids in _ROWS
    )
    (Path(folder) / f"{worker}.tsv").write_text(lines)
