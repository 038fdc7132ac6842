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
that the warm process saved (so compiled) nothing at all. A test that must read the code
of a kernel compiled in-process (Numba shows none of a kernel loaded from its cache)
registers a section of :data:`COLD_ONLY`, run in the cold process alone, after the
sections that compiled its kernels (the wide-vector check of the softmax kernels,
``tests/losses/test_issue13_wide_kernels.py``, once its own cold process).

Under pytest-xdist every worker that needs the fixture calls :func:`run_registered_once`
on the directory the workers share: the first takes a lock and runs the processes, any
other waits on the lock and reads the first's results (``tests/conftest.py`` also orders
the fixture's tests first, so worksteal normally keeps them on one worker).
``tasks.py test`` starts them earlier still: ``python tests/numba_cache_harness.py DIR``
(:func:`main`) runs the two processes beside the documentation build, on the core mypy
leaves idle, and pytest's fixture reads their results from ``DIR``
(``CROSSENT_NUMBA_CACHE_RUNS``) rather than running them on a test worker.

A script that raises does not stop the others: its traceback is recorded and
:func:`section_output` fails the test that reads it.

The cold process compiles, once, kernels that the rest of the suite calls too (on a
fresh clone, as in CI, the suite's own cache starts empty, and the first test of each
kernel would compile it again: ``totals`` alone, float32 and float64, about a minute).
So :func:`run_registered_once` then hands them to the suite: :func:`seed_cache` copies
into the test processes' ``NUMBA_CACHE_DIR`` the cache files of every function that has
none there yet, and the tests load them as they would load their own; the cold process
itself does so after each of its sections too, and then touches a marker (:data:`SEEDED`),
so that the documentation build beside it (``tasks.py test``), which waits for the
marker of the kernels a page calls, loads them rather than compiling them at the same
time (``docs/_ext/crossent_order.py``). What each test proves is unchanged: its
kernels' bits are those of a kernel loaded from the cache, which the sections here
prove equal to the bits of the kernel compiled in-process.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import pickle
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from fresh_process import run_python

__all__ = [
    "COLD_ONLY",
    "SECTIONS",
    "SEEDED",
    "CacheRuns",
    "main",
    "register",
    "run_registered",
    "run_registered_once",
    "section_output",
    "seed_cache",
]

SECTIONS = {
    # Assert exactly which kernels the cold process compiled: nothing may run before them.
    "numba_cache": "test_issue13_numba_cache.py",
    "compiled_small": "losses/test_issue13_compiled_small_cache.py",
    # Any order from here. First the kernels that the documentation's pages call too, in
    # the order the build reads those pages (tasks.py test builds the site beside this
    # process: a page waits for its section's kernels to be seeded into the suite's
    # cache and loads them; docs/_ext/crossent_order.py). ``kernel_bits`` (no page needs
    # its kernels) ran before ``totals_bits`` and ``temperature_bits``, and the build
    # reached those pages first and compiled their kernels beside this process.
    "fused_cache": "info/test_issue13_fused_cache.py",
    "measure_bits": "info/test_issue13_cached_measure_bits.py",
    "totals_bits": "calibration/test_issue13_deterministic_sums.py",
    "temperature_bits": "calibration/test_temperature_fused.py",
    "kernel_bits": "losses/test_issue13_cached_kernel_bits.py",
    # After kernel_bits, whose kernels it inspects; in the cold process only.
    "wide_kernels": "losses/test_issue13_wide_kernels.py",
}
"""The sections, in the order they run in each process, and the test module (under
``tests/``) that registers each."""

COLD_ONLY = frozenset({"wide_kernels"})
"""The sections that run in the cold process only: they read the code of kernels compiled
in-process (Numba will not show that of a kernel loaded from its cache)."""

_REGISTERED: dict[str, str] = {}

_MARKER = "NUMBA-CACHE-HARNESS "

SEEDED = ".harness-seeded-"
"""The cold process touches ``SEEDED + section`` in the seeded folder (the suite's
``NUMBA_CACHE_DIR``) once that section's kernels are there (even if the section
failed): the documentation build beside it waits for the file before it executes a
page that calls those kernels (``docs/_ext/crossent_order.py``), rather than compiling
them at the same time."""

_TIMEOUT = 1800
"""Wall seconds each process may take (``run_python``'s default is 600): the cold process
compiles every section's kernels, and beside the docs build on a loaded or slower
2-core machine it ran past 600 s (2026-12-05, load average 12: killed, then a test
worker ran both processes again, 76 s of CPU, with the cold process's work lost). The
CI job's own limit (15 minutes) ends a hang first."""

_DRIVER = """
import contextlib
import io
import json
import sys
import traceback
from pathlib import Path

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
    if SEED is not None:  # hand this section's kernels to the suite now (seed_cache)
        import os
        sys.path.append(SEED[0])
        from numba_cache_harness import seed_cache

        try:  # a failure here costs time only: the seeding after both processes remains
            seed_cache(Path(os.environ["NUMBA_CACHE_DIR"]), Path(SEED[1]))
        except Exception:
            traceback.print_exc()
        with contextlib.suppress(OSError):  # the docs build waits for it (seeded_marker)
            (Path(SEED[1]) / (SEEDED + name)).touch()
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


def _run_once(
    sections: list[tuple[str, str]], cache: Path, seed: Path | None = None
) -> dict[str, dict[str, str | None]]:
    """``{section: {"stdout": ..., "error": traceback or None}}`` of one fresh process;
    with ``seed``, the process copies what it has compiled into that folder after each
    section (:func:`seed_cache`) and marks it seeded (:data:`SEEDED`); every section is
    marked once the process has ended, even if it failed (the docs build waits no longer)."""
    where = None if seed is None else [str(Path(__file__).resolve().parent), str(seed)]
    script = (
        f"MARKER = {_MARKER!r}\nSCRIPTS_JSON = {json.dumps(sections)!r}\nSEED = {where!r}\n"
        f"SEEDED = {SEEDED!r}\n" + _DRIVER
    )
    try:
        out = run_python(script, numba_cache=cache, debug_cache=True, timeout=_TIMEOUT)
    finally:
        if seed is not None:
            for name, _ in sections:
                with contextlib.suppress(OSError):
                    (seed / (SEEDED + name)).touch()
    line = next(line for line in reversed(out.splitlines()) if line.startswith(_MARKER))
    return dict(json.loads(line.removeprefix(_MARKER)))


def run_registered(cache: Path, seed: Path | None = None) -> CacheRuns:
    """Every registered section in one cold, then one warm, process on ``cache`` (empty);
    the cold process seeds ``seed`` (the suite's cache, if any) after each section."""
    sections = [(name, _REGISTERED[name]) for name in SECTIONS if name in _REGISTERED]
    cold = _run_once(sections, cache, seed)
    warm = _run_once([section for section in sections if section[0] not in COLD_ONLY], cache)
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


def run_registered_once(shared: Path, suite_cache: Path | None = None) -> CacheRuns:
    """:func:`run_registered` once for all the processes that share ``shared`` (the
    pytest-xdist workers of one run, and :func:`main` ahead of them): the first runs it,
    the others read its results, kept under a name that is a digest of the registered
    scripts (so a run of other scripts, or of fewer, is never read as this one's). The
    first then seeds ``suite_cache``, the test processes' ``NUMBA_CACHE_DIR`` (if any),
    with what the cold process compiled (:func:`seed_cache`)."""
    sections = [(name, _REGISTERED[name]) for name in SECTIONS if name in _REGISTERED]
    digest = hashlib.sha256(json.dumps(sections).encode()).hexdigest()[:16]
    result = shared / f"numba_cache_runs-{digest}.json"
    with _locked(shared / "numba_cache_runs.lock"):
        if result.exists():
            return CacheRuns(**json.loads(result.read_text()))
        cache = Path(tempfile.mkdtemp(prefix="numba_cache", dir=shared))
        runs = run_registered(cache, suite_cache)
        result.write_text(json.dumps(asdict(runs)))
    if suite_cache is not None:
        seed_cache(cache, suite_cache)
    return runs


def main(shared: Path) -> None:
    """Register every section (importing the test modules of :data:`SECTIONS`) and run
    them once into ``shared`` (:func:`run_registered_once`, seeding ``NUMBA_CACHE_DIR``).

    ``tasks.py test`` runs this beside the documentation build, whose second core is
    idle once mypy is done, and hands ``shared`` to pytest as ``CROSSENT_NUMBA_CACHE_RUNS``:
    the fixture ``numba_cache_runs`` then reads these results (waiting on the lock while
    the processes still run) instead of running the two processes on a test worker. The
    tests assert on the same output of the same scripts; if this run failed or ran other
    scripts, the fixture finds no result under its digest and runs the processes itself.
    """
    import importlib.util
    import sys

    tests = Path(__file__).resolve().parent
    for name, module in SECTIONS.items():
        spec = importlib.util.spec_from_file_location(f"_numba_cache_{name}", tests / module)
        assert spec is not None, module
        assert spec.loader is not None, module
        module_of_tests = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module_of_tests  # as an import would (dataclasses look)
        spec.loader.exec_module(module_of_tests)
    suite_cache = os.environ.get("NUMBA_CACHE_DIR")
    run_registered_once(shared, Path(suite_cache) if suite_cache else None)


def seed_cache(source: Path, target: Path) -> list[str]:
    """Copy into ``target`` Numba's cache files (index ``.nbi`` and data ``.nbc``) of every
    kernel cached in ``source`` that ``target`` lacks; the functions some kernel was
    copied of.

    The two folders' layouts are the same (a subfolder per source folder, named by its
    path) and the sources are the same files, so the indexes' source stamps hold. A
    function with no file in ``target`` gets all of its kernels. A function whose index
    is in ``target`` (under ``tasks.py test`` the docs build, beside the cold process,
    compiles some of the same functions, often for other dtypes) gets the signatures
    that index lacks, added to it: without them the suite compiled again what the cold
    process had compiled (``totals`` for float32: a test's 22 s of CPU). A function with
    data files but no index in ``target`` (a process saving it) is left alone.

    A test process may compile and save one of these functions meanwhile (Numba numbers
    a new data file 1, 2, ... past those its index names, and replaces whole files,
    index before data). So the data files are copied under numbers from
    :data:`_SEED_NUMBERS` on, which such a process never picks, each written under a
    temporary name and linked into place only if its name is free, data before index;
    a new index is linked into place only if none is there, a merged one replaces the
    index it was read from (:func:`_merged_index`). Whichever index stays (ours, that
    process's, or its own built on ours) is whole, and each data file it names holds
    that entry's kernel once its writer is done; at worst an entry is dropped, and a
    process compiles that kernel again.
    """
    from numba.core.serialize import dumps

    copied = []
    for index in sorted(source.rglob("*.nbi")):
        folder = target / index.parent.relative_to(source)
        stem = index.name.removesuffix(".nbi")
        with index.open("rb") as handle:  # as numba.core.caching.IndexDataCacheFile
            version = pickle.load(handle)
            stamp, overloads = pickle.loads(handle.read())
        there: dict[object, str] = {}
        if folder.is_dir() and any(folder.glob(glob.escape(stem) + ".*")):
            there_index = _merged_index(folder / index.name, version, stamp)
            if there_index is None:
                continue  # a process is saving this function, or other sources saved it
            there = there_index
        missing = [key for key in overloads if key not in there]
        if not missing:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        merged = dict(there)
        taken = set(there.values())
        number = _SEED_NUMBERS
        for key in missing:
            while f"{stem}.{number}.nbc" in taken or (folder / f"{stem}.{number}.nbc").exists():
                number += 1
            merged[key] = f"{stem}.{number}.nbc"
            taken.add(merged[key])
            _link_new((index.parent / overloads[key]).read_bytes(), folder / merged[key])
        data = pickle.dumps(version, protocol=-1) + dumps((stamp, merged))
        if there:
            _replace(data, folder / index.name)
        else:
            _link_new(data, folder / index.name)
        copied.append(str(index.relative_to(source)))
    return copied


def _merged_index(path: Path, version: str, stamp: object) -> dict[object, str] | None:
    """The entries of the Numba index at ``path``, if it is there and of this Numba
    ``version`` and source ``stamp`` (so our entries may join it); else None."""
    try:
        with path.open("rb") as handle:
            if pickle.load(handle) != version:
                return None
            there_stamp, overloads = pickle.loads(handle.read())
    except FileNotFoundError:
        return None
    return dict(overloads) if there_stamp == stamp else None


_SEED_NUMBERS = 1_000_001
"""The first number of a seeded data file (Numba's own count from 1)."""


def _link_new(data: bytes, target: Path) -> None:
    """``data`` at ``target`` if nothing is there, all at once (else nothing)."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".seed-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        with contextlib.suppress(FileExistsError):
            os.link(temporary, target)
    finally:
        os.unlink(temporary)


def _replace(data: bytes, target: Path) -> None:
    """``data`` at ``target``, replacing what is there, all at once."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".seed-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def section_output(runs: CacheRuns, name: str) -> tuple[str, str]:
    """``(cold standard output, warm standard output)`` of section ``name``; fails if the
    section raised in either process (a section of :data:`COLD_ONLY`: ``""`` for the warm)."""
    for which, outputs in (("cold", runs.cold), ("warm", runs.warm)):
        if which == "warm" and name in COLD_ONLY:
            continue
        error = outputs[name]["error"]
        assert error is None, f"section {name} failed in the {which} process:\n{error}"
    warm = "" if name in COLD_ONLY else str(runs.warm[name]["stdout"])
    return str(runs.cold[name]["stdout"]), warm


if __name__ == "__main__":  # the registry is that of the module the tests import
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import numba_cache_harness

    numba_cache_harness.main(Path(sys.argv[1]))
