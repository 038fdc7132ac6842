"""One cold and one warm process for every test of Numba's on-disk cache (issue 13).

Six tests prove that a compiled kernel loads from Numba's disk cache in a later process
(``dispatcher.stats``: hits, no misses) and gives the bits of the kernel compiled in the
process that saved it. Each used to run its script in a fresh process against a new
``NUMBA_CACHE_DIR`` and then again in a second one: twelve interpreters importing NumPy,
Numba and crossent, and the kernels several tests share (the softmax kernels, the
compiled small call, the measures' kernels) compiled cold more than once (about 135 s of a
CI worker's time). Now each test module registers its script here under a name from
:data:`SECTIONS`, and the session fixture ``numba_cache_runs`` (``tests/conftest.py``) runs
every registered script, in the order of :data:`SECTIONS`, in ONE cold process and then
in ONE warm process on one new cache directory. Each script runs in its own namespace with
its standard output captured apart, so each test reads what its own script printed, as
before.

What the merge keeps: the cold process compiles every kernel itself (the cache is empty)
and saves it; the warm process starts with every kernel on disk and must load, not
compile. The statistics a script prints are cumulative over the process, so the scripts
that assert exactly which functions were compiled, and with how many signatures, come
first in :data:`SECTIONS` (nothing before them compiles). ``NUMBA_DEBUG_CACHE`` is on in
both processes: its "data saved"/"data loaded" lines land in the output of the script
that triggered them, and :meth:`CacheRuns.warm_sections_that_saved` lets a test check
that the warm process saved (so compiled) nothing at all.

Under pytest-xdist every worker that needs the fixture calls :func:`run_registered_once`
on the directory the workers share: the first takes a lock and runs the processes, any
other waits on the lock and reads the first's results (``tests/conftest.py`` also orders
the fixture's tests first, so worksteal normally keeps them on one worker).

A script that raises does not stop the others: its traceback is recorded and
:func:`section_output` fails the test that reads it.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from fresh_process import run_python

__all__ = [
    "SECTIONS",
    "CacheRuns",
    "register",
    "run_registered",
    "run_registered_once",
    "section_output",
]

SECTIONS = (
    # Assert exactly which kernels the cold process compiled: nothing may run before them.
    "numba_cache",  # tests/test_issue13_numba_cache.py
    "compiled_small",  # tests/losses/test_issue13_compiled_small_cache.py
    # Any order from here.
    "fused_cache",  # tests/info/test_issue13_fused_cache.py
    "measure_bits",  # tests/info/test_issue13_cached_measure_bits.py
    "kernel_bits",  # tests/losses/test_issue13_cached_kernel_bits.py
    "totals_bits",  # tests/calibration/test_issue13_deterministic_sums.py
)
"""The sections, in the order they run in each process."""

_REGISTERED: dict[str, str] = {}

_MARKER = "NUMBA-CACHE-HARNESS "

_DRIVER = """
import contextlib
import io
import json
import sys
import traceback

scripts = json.loads(SCRIPTS_JSON)
outputs = {}
for name, source in scripts:
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            exec(compile(source, f"<section {name}>", "exec"), {"__name__": "__main__"})
        outputs[name] = {"stdout": buffer.getvalue(), "error": None}
    except BaseException:
        outputs[name] = {"stdout": buffer.getvalue(), "error": traceback.format_exc()}
print(MARKER + json.dumps(outputs))
"""


def register(name: str, script: str) -> None:
    """Register the script of section ``name`` (one of :data:`SECTIONS`), at import time
    of its test module."""
    if name not in SECTIONS:
        raise ValueError(f"unknown section {name!r}; add it to SECTIONS")
    _REGISTERED[name] = script


@dataclass(frozen=True)
class CacheRuns:
    """The captured output of every section in the cold and in the warm process."""

    cold: dict[str, dict[str, str | None]]
    warm: dict[str, dict[str, str | None]]

    def warm_sections_that_saved(self) -> list[str]:
        """The sections during which the warm process saved a kernel (compiled it)."""
        return [name for name, out in self.warm.items() if "data saved" in str(out["stdout"] or "")]


def _run_once(sections: list[tuple[str, str]], cache: Path) -> dict[str, dict[str, str | None]]:
    """``{section: {"stdout": ..., "error": traceback or None}}`` of one fresh process."""
    script = f"MARKER = {_MARKER!r}\nSCRIPTS_JSON = {json.dumps(sections)!r}\n" + _DRIVER
    out = run_python(script, numba_cache=cache, debug_cache=True)
    line = next(line for line in reversed(out.splitlines()) if line.startswith(_MARKER))
    return dict(json.loads(line.removeprefix(_MARKER)))


def run_registered(cache: Path) -> CacheRuns:
    """Every registered section in one cold, then one warm, process on ``cache`` (empty)."""
    sections = [(name, _REGISTERED[name]) for name in SECTIONS if name in _REGISTERED]
    cold = _run_once(sections, cache)
    warm = _run_once(sections, cache)
    return CacheRuns(cold, warm)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` between processes (POSIX ``flock``; elsewhere none:
    each worker then runs its own processes, slower but as correct)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover (Windows)
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_registered_once(shared: Path) -> CacheRuns:
    """:func:`run_registered` once for all the test processes that share ``shared`` (the
    pytest-xdist workers of one run): the first runs it, the others read its results."""
    result = shared / "numba_cache_runs.json"
    with _locked(shared / "numba_cache_runs.lock"):
        if result.exists():
            return CacheRuns(**json.loads(result.read_text()))
        runs = run_registered(Path(tempfile.mkdtemp(prefix="numba_cache", dir=shared)))
        result.write_text(json.dumps(asdict(runs)))
        return runs


def section_output(runs: CacheRuns, name: str) -> tuple[str, str]:
    """``(cold standard output, warm standard output)`` of section ``name``; fails if the
    section raised in either process."""
    for which, outputs in (("cold", runs.cold), ("warm", runs.warm)):
        error = outputs[name]["error"]
        assert error is None, f"section {name} failed in the {which} process:\n{error}"
    return str(runs.cold[name]["stdout"]), str(runs.warm[name]["stdout"])
