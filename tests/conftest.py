"""Shared fixtures: the array backends every core test runs on, hypothesis profiles, the
one cold and one warm process of the Numba cache tests, and the order that starts the
long tests first."""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=100, deadline=None)
# For mutation runs (tests/MUTATION.md): few examples, so one mutant costs seconds.
settings.register_profile("mutation", derandomize=True, max_examples=10, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


#: JAX's persistent compilation cache, one folder per test run shared by its pytest-xdist
#: workers (``pytest_configure`` below). JAX compiles every primitive of an eager call
#: for each shape and dtype (about 40 ms of CPU each on the CI's CPUs, several hundred per
#: loss under ``jax.grad``), and each worker compiled the same ones again; a program the
#: other worker compiled is read back instead (about a third of the CPU). The same XLA
#: compilation: the values are the same programs' values.
_JAX_CACHE_ENV = {
    "JAX_COMPILATION_CACHE_DIR": "",  # set to the run's folder
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",  # every program (default: >= 1 s)
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",  # of every size
}
_JAX_CACHE_CREATED = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Start the run's JAX compilation cache (``_JAX_CACHE_ENV``) in a new temporary
    folder, unless one is set already (a pytest-xdist worker inherits its controller's
    environment; a user's own cache is kept). Set as environment variables, read when
    JAX is imported: nothing imports JAX here. Two workers may write and read one entry
    at once (JAX writes an entry in place): a partly written entry read back is a warning
    and a compilation, not an error."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR") is None and "jax" not in sys.modules:
        folder = tempfile.mkdtemp(prefix="crossent-jax-cache-")
        config.stash[_JAX_CACHE_CREATED] = folder
        os.environ.update(_JAX_CACHE_ENV, JAX_COMPILATION_CACHE_DIR=folder)
    config.addinivalue_line(
        "filterwarnings", "ignore:Error reading persistent compilation cache entry:UserWarning"
    )
    # Hypothesis registers its own global PRNG (register_random, in deterministic_PRNG):
    # gc.collect(), then gc.get_referrers(), which does not search frozen objects. The
    # full pass's freeze (freeze_after_full_collections) hides the PRNG's holder (a
    # thread-local), and Hypothesis warns that it may be collected; it is referenced, and
    # Hypothesis manages it all the same.
    config.addinivalue_line(
        "filterwarnings",
        "ignore:It looks like `register_random` was passed an object that could be garbage"
        ":hypothesis.errors.HypothesisWarning",
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the JAX compilation cache folder this process made (the controller's,
    after its workers ended)."""
    folder = config.stash.get(_JAX_CACHE_CREATED, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        for name in _JAX_CACHE_ENV:
            os.environ.pop(name, None)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection(session: pytest.Session) -> Any:
    """Collect with Python's cyclic garbage collector paused, then freeze what collection
    left (:func:`gc.freeze`): the modules, functions and items of the run, and the
    libraries they imported (torch, JAX, SciPy, Numba: about a million objects).

    Each full pass of the collector walks every object tracked; while the test modules
    were imported it ran ten times, about 2.1 s of the 15 s of one process's collection
    CPU, and each full pass after that (pytest's own two at the session's end, and those
    during the tests) walked the same million objects again. Frozen, they are no longer
    walked; objects made later are collected as before. The unreachable cycles collection
    left (about 96,000 objects, 11 MB of a worker's 976 MB) stay allocated: freeing them
    first would cost one more full pass (0.9 s). No test's values change: the collector
    only frees unreachable cycles, whenever it runs."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return (yield)
    finally:
        gc.freeze()
        if freeze_after_full_collections not in gc.callbacks:
            gc.callbacks.append(freeze_after_full_collections)
        if enabled:
            gc.enable()


def freeze_after_full_collections(phase: str, info: dict[str, int]) -> None:
    """A :data:`gc.callbacks` entry (from the end of collection on): once a full pass of
    the collector (generation 2) has freed every unreachable cycle, freeze (:func:`gc.freeze`)
    what it left, all of it reachable, so that the next full pass walks only the objects
    made since.

    The tests import and fill more after collection (``torch._dynamo``, JAX's and XLA's
    caches, Numba's compiled kernels, Dynamo's graphs): a test process's full passes
    walked those again and again, 150-250 ms of CPU each, and the collector took 6-10 % of
    its CPU; with this, 25 ms a full pass, 3 % (benchmarks/RESULTS.md, "CI time: the
    collector's full passes"). Each pass still frees all the garbage it finds, as before;
    what changes is that an object alive at one full pass and in an unreachable cycle
    later stays allocated (a module's fixtures torn down, a cache's evicted entries): no
    test's values change; the measured peak RSS rose 22 MB (1744 -> 1766 MB). Objects made
    within a test are collected as before. :func:`gc.get_referrers` and
    :func:`gc.get_objects` do not see frozen objects: no test here calls them (nor
    ``gc.collect``); Hypothesis's ``register_random`` does, and its warning is ignored
    (:func:`pytest_configure`). Stop 72's CI: pytest 952 s of CPU with this, 1125 s
    without, on trees that differ in nothing else that runs."""
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


try:  # pytest's doctest collector of a ``.py`` file (not public)
    from _pytest.doctest import DoctestModule as _DoctestModule
except ImportError:  # (another pytest: every collector is kept)
    _DoctestModule = None  # type: ignore[assignment,misc]


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
    """No doctest collector for the files under ``tests``: pyproject's
    ``--doctest-modules`` (for the examples in ``src/crossent``'s docstrings) made one for
    every ``.py`` file here too, beside its test module, and none holds an example (``>>>``
    appears in no file here). Each one parsed its module's fixtures a second time and
    walked every function and class of it for docstrings: about 0.8 s of each pytest-xdist
    worker's collection CPU for the 560 test modules (benchmarks/RESULTS.md, "Collection
    CPU"). The helper modules that are not tests (``oracles``, ``strategies``, ...) are
    imported where a test module imports them, not by a doctest collector of their own.
    A file here that gains an example is a failure of
    ``test_issue13_collection_no_doctests_under_tests``."""
    collectors: list[pytest.Collector] = yield
    if _DoctestModule is None:
        return collectors
    return [c for c in collectors if not isinstance(c, _DoctestModule)]


@dataclass(frozen=True)
class Backend:
    """How to move NumPy test data into one array library and back."""

    name: str
    asarray: Callable[[np.ndarray], Any]
    to_numpy: Callable[[Any], np.ndarray]
    array_type: type | tuple[type, ...]


def _numpy() -> Backend:
    return Backend("numpy", np.asarray, np.asarray, (np.ndarray, np.generic))


def _numpy_readonly() -> Backend:
    def readonly(a: np.ndarray) -> np.ndarray:
        a = np.array(a)  # a private copy, then frozen: any write into it raises
        a.flags.writeable = False
        return a

    return Backend("numpy-readonly", readonly, np.asarray, (np.ndarray, np.generic))


def _strict() -> Backend:
    import array_api_strict as xs

    return Backend(
        "array-api-strict",
        lambda a: xs.asarray(np.asarray(a)),
        lambda x: np.from_dlpack(x),
        type(xs.asarray(0.0)),
    )


def _torch() -> Backend:
    import torch

    return Backend(
        "torch",
        lambda a: torch.from_numpy(np.array(a)),
        lambda x: x.detach().cpu().numpy(),
        torch.Tensor,
    )


def _jax() -> Backend:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    return Backend("jax", lambda a: jnp.asarray(a), lambda x: np.asarray(x), jax.Array)


@pytest.fixture
def jax_x64() -> Iterator[Any]:
    """JAX with ``jax_enable_x64`` on for one test, and put back as it was after it (the
    ``jax`` module, for tests that want it); the test is skipped where JAX is not
    installed. Request it by name, or for a whole module with
    ``pytestmark = pytest.mark.usefixtures("jax_x64")``."""
    jax = pytest.importorskip("jax")
    with _jax_x64_set(jax, True):
        yield jax


@pytest.fixture
def no_x64() -> Iterator[Any]:
    """JAX with ``jax_enable_x64`` off (JAX's default, float32 at most) for one test, and
    put back as it was after it (the ``jax.numpy`` module); skipped without JAX."""
    jax = pytest.importorskip("jax")
    with _jax_x64_set(jax, False):
        import jax.numpy as jnp

        yield jnp


@contextlib.contextmanager
def _jax_x64_set(jax: Any, on: bool) -> Iterator[None]:
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", on)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)


_BACKENDS: dict[str, tuple[str | None, Callable[[], Backend]]] = {
    "numpy": (None, _numpy),
    "numpy-readonly": (None, _numpy_readonly),
    "array-api-strict": ("array_api_strict", _strict),
    "torch": ("torch", _torch),
    "jax": ("jax", _jax),
}


@pytest.fixture(params=list(_BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    """Every installed array backend; missing ones are skipped."""
    module, make = _BACKENDS[request.param]
    if module is not None and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    return make()


#: mpmath's default working precision (53 bits, 15 digits): every test starts and ends at
#: it. An oracle sets its own precision where it runs (``with mpmath.workdps(N):`` or
#: ``@mpmath.workdps(N)``): ``mpmath.mp`` is one global, and a module-level ``mpmath.mp.dps
#: = N`` in a test module is one setting for the whole run (pytest imports every test
#: module before any test runs; the last import wins: CI once failed 14 cases of a
#: 60-digit oracle at another module's 40 digits).
MPMATH_DEFAULT_PREC = 53


def _mpmath_prec() -> int | None:
    """mpmath's working precision in bits, or None where no test imported mpmath (not
    imported here)."""
    module = sys.modules.get("mpmath")
    return None if module is None else int(module.mp.prec)


def _reset_mpmath_prec() -> None:
    sys.modules["mpmath"].mp.prec = MPMATH_DEFAULT_PREC


_SET_IT_WHERE_IT_RUNS = (
    "set the oracle's precision where it runs: `with mpmath.workdps(N):` or "
    "`@mpmath.workdps(N)` (mpmath.mp is one global; see MPMATH_DEFAULT_PREC in tests/conftest.py)"
)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """A module whose import (or that of a helper it imports first, such as ``oracles``)
    changed mpmath's working precision is a collection error naming it, and the
    precision is put back for the next module."""
    before = _mpmath_prec()
    report = yield
    after = _mpmath_prec()
    if after is not None and after != (before or MPMATH_DEFAULT_PREC):
        _reset_mpmath_prec()
        report.outcome = "failed"
        report.longrepr = (
            f"importing {collector.nodeid} set mpmath's working precision to {after} bits "
            f"(from {before or MPMATH_DEFAULT_PREC}): a module-level mpmath.mp.dps/prec is "
            f"one setting for every test of the run; {_SET_IT_WHERE_IT_RUNS}"
        )
    return report


def check_mpmath_default_prec(when: str) -> None:
    """Fail (the precision put back first) where mpmath's working precision is not the
    default; ``when`` says where it was found (a sentence's start)."""
    found = _mpmath_prec()
    if found is not None and found != MPMATH_DEFAULT_PREC:
        _reset_mpmath_prec()
        pytest.fail(
            f"{when} mpmath's working precision was {found} bits, not the default "
            f"{MPMATH_DEFAULT_PREC}; " + _SET_IT_WHERE_IT_RUNS,
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _mpmath_precision_default() -> Any:
    """Every test starts at mpmath's default precision (``MPMATH_DEFAULT_PREC``) and must
    leave it there: a test found at another precision, or one that left another, fails
    (and the default is put back for the next test).

    History: a test that set ``mpmath.mp.prec = 80`` (about 24 digits) and kept it changed
    the oracles of every test after it on the same worker (the 40-digit label-gradient
    oracles, whose :math:`1 + (p_y - 1)` of :math:`p_y \\approx 10^{-20}` then kept about 5
    digits, failed by up to 1e20 float32 ulps once an AVX2-only test had run before them
    in the process); and the last-imported module's ``mpmath.mp.dps = 40`` ran a 60-digit
    oracle at 40 (CI failed 14 cases). mpmath is not imported here: only where a test
    already did.
    """
    check_mpmath_default_prec(
        "At the start of this test (set at import, or left by an earlier test)"
    )
    yield
    check_mpmath_default_prec("At the end of this test (which set it and left it)")


@pytest.fixture(autouse=True)
def _torch_path_for_tensors(request: pytest.FixtureRequest) -> Any:
    """Tests of PyTorch tensors through the generic functions test the torch path: small
    CPU tensors otherwise take the host route (``crossent._torch_host``: the NumPy path,
    results as tensors; on by default), and the torch path's code would go untested on
    the CPU (the ``backend`` fixture's "torch", the generic-path oracles). A module that
    tests the route itself sets ``HOST_ROUTE = True`` (``tests/pytorch/
    test_torch_host_route.py``: both routes against each other and against mpmath)."""
    if getattr(request.module, "HOST_ROUTE", False):
        yield
        return
    from crossent import _torch_host

    saved = _torch_host.MAX_ELEMENTS
    _torch_host.MAX_ELEMENTS = -1
    yield
    _torch_host.MAX_ELEMENTS = saved


@pytest.fixture(scope="session")
def numba_cache_runs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The sections registered in ``numba_cache_harness``, run once in a cold and once in a
    warm process on one new ``NUMBA_CACHE_DIR`` (a :class:`numba_cache_harness.CacheRuns`),
    once for all pytest-xdist workers; what the cold process compiled then seeds this
    run's own ``NUMBA_CACHE_DIR``, where set (``tasks.py test`` sets it). Under
    ``tasks.py test`` the processes ran ahead, beside the docs build, into the folder
    ``CROSSENT_NUMBA_CACHE_RUNS`` names (``numba_cache_harness.main``)."""
    pytest.importorskip("numba")
    from numba_cache_harness import run_registered_once

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the workers' basetemps are siblings
    if os.environ.get("CROSSENT_NUMBA_CACHE_RUNS"):  # run ahead by tasks.py test
        shared = Path(os.environ["CROSSENT_NUMBA_CACHE_RUNS"])
    suite_cache = os.environ.get("NUMBA_CACHE_DIR")
    return run_registered_once(shared, Path(suite_cache) if suite_cache else None)


_LONG_FIRST = (
    # Seconds of a cold-cache CI run on 2 cores (durations of 558cfdd), for tests whose
    # own work is long (spawned ranks, subprocesses, a browser); not those that were long
    # only as the first user of a Numba kernel (any test of that kernel pays it). Started
    # first, so that none of them begins last and lengthens the run's tail:
    # pytest-xdist's worksteal hands each worker a contiguous half and steals from the back.
    "tests/pytorch/test_vocab_parallel.py::test_issue15_vocab_parallel_matches_unsharded",  # 30
    "tests/cli/test_issue14_browser.py::test_issue14_html_reports_readable_at_1280px",  # 18
    "tests/pytorch/test_all_reduce_state.py::test_issue15_all_reduce_state_equals_one_shot",  # 17
    "tests/cli/test_cli.py::test_installed_script_and_python_m",  # 9
    "tests/pytorch/test_compile.py::test_cross_entropy_compiles_fullgraph_with_ignored_targets",
    # Seconds of a warm-cache run under load 4-5 (about twice quiet), for work of their
    # own that no cache shortens: a kernel compiled uncached from Python (``_kl_exact``,
    # njit without cache), Dynamo's compilations, a pytest run under the AVX2 emulation.
    "tests/info/test_issue13_kl_float64_exact.py::test_issue13_kl_exact_further_shift_passes",  # 73
    "tests/pytorch/test_issue13_distill_compile.py::test_a_second_batch_size_compiles",  # 51
    "tests/losses/test_issue13_avx2loop.py::test_issue13_avx2_loop_tests_pass_under",  # 34
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The Numba cache tests first (all on the worker that runs their one fixture), then
    the long tests of ``_LONG_FIRST``, the tests of the built docs site last (they may
    wait for it: :func:`pytest_runtest_setup`); the rest keep their order.

    A test id that prints an object's address (``<function <lambda> at 0x...>``) is
    refused: pytest-xdist's workers each collect their own ids, and one that differs
    between them stops the whole run ("Different tests were collected")."""
    addressed = [item.nodeid for item in items if " at 0x" in item.nodeid]
    if addressed:
        raise pytest.UsageError(
            f"{len(addressed)} test ids hold an object's address, which differs between "
            f"pytest-xdist workers; give them ids: {addressed[0]}"
        )

    def rank(item: pytest.Item) -> int:
        if "numba_cache_runs" in getattr(item, "fixturenames", ()):
            return 0
        if _reads_site(item):
            return 3
        return 1 if item.nodeid.startswith(_LONG_FIRST) else 2

    items.sort(key=rank)  # stable


#: Wall seconds a test of the built docs site waits for ``tasks.py test``'s build (which
#: runs beside pytest) before it goes on (and skips, the site not being there).
SITE_WAIT = 1800.0


def _reads_site(item: pytest.Item) -> bool:
    """Whether ``item`` reads the built docs site (its module names it ``SITE``)."""
    return getattr(getattr(item, "module", None), "SITE", None) is not None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test of the built docs site waits until ``tasks.py test``'s docs build, which runs
    beside pytest, has put the site in place: it touches the file that
    ``CROSSENT_SITE_BUILT`` names once it has (or once the build failed); nothing
    elsewhere. What the test checks is unchanged: the site of the sources under test."""
    built = os.environ.get("CROSSENT_SITE_BUILT")
    if not built or not _reads_site(item):
        return
    start = time.monotonic()
    while not Path(built).exists() and time.monotonic() - start < SITE_WAIT:
        time.sleep(0.5)
