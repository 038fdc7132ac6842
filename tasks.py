#!/usr/bin/env python3
"""Project tasks that work on a fresh clone with only Python >= 3.11 and the package index.

    python3 tasks.py report  # the main job: install crossent into .venv, run `crossent report`
    python3 tasks.py demo    # the tutorial examples (`crossent demo [TOPIC]`)
    python3 tasks.py test    # install the test extras into .venv; ruff, mypy, docs, pytest
    python3 tasks.py docs    # build the documentation site into site/ (index: site/index.html)

Each creates ``.venv`` beside this file on first use and re-installs only when
``pyproject.toml`` changes, with uv (installed into ``.venv`` by pip; pip itself where
uv cannot install, or with ``CROSSENT_NO_UV=1``).  Standard library only, so it runs
before anything is installed.  Extra arguments after ``test`` go to pytest.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if sys.platform == "win32" else "bin")
PYTHON = BIN / ("python.exe" if sys.platform == "win32" else "python")

# What each task installs. torch is pinned: on the project's machines 2.13.0 is a local
# CPU wheel, while an unpinned torch pulls several GB of CUDA packages.
REQUIREMENTS = {
    "report": ["-e", ".[cli]"],
    "demo": ["-e", ".[cli]"],
    "test": ["-e", ".[dev,jax,fast,cli,docs]", "torch==2.13.0"],
    "docs": ["-e", ".[docs]"],
}
SITE = ROOT / "site"
# pytest-xdist: one worker per core (CI has 2), tests handed out as workers free up.
PARALLEL = ["-n", "auto", "--dist", "worksteal"]
DOCS_BUILD = ROOT / "docs" / "_build"
# How many steps of priority pytest runs below the docs build and the Numba cache
# harness beside it (``os.nice``; none where the platform lacks it): see :func:`test`.
PYTEST_NICE = 5


def _children_cpu() -> float:
    """User + system CPU seconds of this process's ended, waited-for children (0 where
    the platform does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


# Whether each step prints its time (``test`` only: CI's log; the report and the demo
# keep their output to themselves).
_TIMED = {"on": False}


def _took(
    command: tuple[str | Path, ...], wall_start: float, cpu_start: float, note: str = ""
) -> None:
    """One line on stderr: a step's wall time and its processes' CPU time, so that a CI
    log shows where the time went (the phases overlap: see :func:`test`)."""
    if not _TIMED["on"]:
        return
    name = " ".join(Path(str(c)).name for c in command[:4])
    wall, cpu = time.monotonic() - wall_start, _children_cpu() - cpu_start
    print(
        f"= {wall:.1f} s wall, {cpu:.1f} s CPU: {name} {note}".rstrip(), file=sys.stderr, flush=True
    )


def _run(*command: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(c) for c in command), file=sys.stderr, flush=True)
    wall, cpu = time.monotonic(), _children_cpu()
    # (env None: this process's environment)
    subprocess.run([str(c) for c in command], cwd=cwd, check=True, env=env)
    _took(command, wall, cpu)


_STARTED: dict[int, tuple[tuple[str | Path, ...], float]] = {}


def _start(
    *command: str | Path, nice: int = 0, output: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a command in the background (``_finish`` waits for it and checks its status),
    ``nice`` steps below this process's priority where the platform has ``os.nice``, its
    output into the file ``output`` if given."""
    print("+", " ".join(str(c) for c in command), "&", file=sys.stderr, flush=True)
    lower = (lambda: os.nice(nice)) if nice and hasattr(os, "nice") else None
    # the child keeps its own copy of the file; with no file it shares this process's output
    with open(output, "wb") if output else contextlib.nullcontext() as out:
        process = subprocess.Popen(
            [str(c) for c in command], cwd=ROOT, preexec_fn=lower, stdout=out, stderr=out
        )
    _STARTED[process.pid] = (command, time.monotonic())
    return process


def _finish(process: subprocess.Popen[bytes], check: bool = True) -> None:
    cpu = _children_cpu()
    if process.returncode is None and hasattr(os, "wait4"):
        # reaped here, its own CPU is known even while other children end meanwhile
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        cpu = _children_cpu() - usage.ru_utime - usage.ru_stime
    status = process.wait()
    if process.pid in _STARTED:  # (its CPU: what the children's total grew by)
        command, wall = _STARTED.pop(process.pid)
        _took(command, wall, cpu)
    if check and status != 0:
        raise subprocess.CalledProcessError(process.returncode, process.args)


def ensure_environment(task: str) -> None:
    """Create .venv and install the task's requirements unless already up to date."""
    if sys.version_info < (3, 11):  # noqa: UP036 - runs on whatever python3 the user has
        sys.exit(f"crossent needs Python >= 3.11; this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        venv.create(VENV, with_pip=True)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(" ".join(REQUIREMENTS[task]).encode())
    stamp = VENV / f".installed-{task}"
    if stamp.exists() and stamp.read_text() == digest.hexdigest():
        return
    install(REQUIREMENTS[task])
    stamp.write_text(digest.hexdigest())


# pip's settings that uv is given as the same options (or environment), and those that do
# not change what is installed; any other setting in pip's configuration (``pre``,
# ``trusted-host``, ``no-binary``, ``user``, ...) and the install is pip's own.
_UV_SAME = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraints",
}
_UV_ENVIRONMENT = {"cert": "SSL_CERT_FILE", "timeout": "UV_HTTP_TIMEOUT"}
_UV_NEEDLESS = {
    "cache-dir",
    "disable-pip-version-check",
    "no-cache-dir",
    "no-compile",
    "no-input",
    "no-warn-script-location",
    "progress-bar",
    "quiet",
    "require-virtualenv",
    "retries",
    "root-user-action",
    "verbose",
}
_TRUE = ("1", "true", "yes", "on")
_PIP_QUIET = ("--quiet", "--disable-pip-version-check")


def uv_options(config: str) -> tuple[list[str], dict[str, str]] | None:
    """uv's options and environment for pip's configuration, as ``pip config list``
    prints it (``global.find-links='/opt/wheels'``, ``:env:.cert='...'``); None where it
    holds a setting with no translation here.

    pip reads its files' ``global`` section, then ``install``, then the ``PIP_*``
    environment (``:env:``), each overriding the last; the list settings are
    whitespace-separated. uv reads none of them, so without these options it would
    install from another index than pip (here: without the machine's local indexes and
    wheels, and without its constraints) or not trust its certificates.
    """
    settings: dict[str, str] = {}
    for section in ("global", "install", ":env:"):
        for line in config.splitlines():
            key, _, value = line.partition("=")
            if key.startswith(section + ".") and value:
                settings[key[len(section) + 1 :]] = ast.literal_eval(value)
    if "default-timeout" in settings:  # (PIP_DEFAULT_TIMEOUT: an alias)
        settings.setdefault("timeout", settings.pop("default-timeout"))
    options: list[str] = []
    environment: dict[str, str] = {}
    for key, value in settings.items():
        if key in _UV_SAME:
            for item in value.split():
                options += [_UV_SAME[key], item]
        elif key == "no-index":
            options += ["--no-index"] if value.lower() in _TRUE else []
        elif key in _UV_ENVIRONMENT:
            environment[_UV_ENVIRONMENT[key]] = value
        elif key not in _UV_NEEDLESS:
            return None
    return options, environment


def install(requirements: list[str]) -> None:
    """Install ``requirements`` into .venv: with uv where it can be, else with pip.

    uv (installed into .venv from the package index by pip, once) downloads and unpacks
    the wheels in parallel and resolves faster; it is told pip's index, find-links,
    constraints and certificates (:func:`uv_options`) and takes the best version across
    the indexes, as pip does, so it installs the same versions. Where pip's
    configuration holds another setting, where uv does not install, or fails, pip does
    the install as before; ``CROSSENT_NO_UV=1`` opts out of uv.
    """
    if not os.environ.get("CROSSENT_NO_UV"):
        try:
            if _install_with_uv(requirements):
                return
        except (subprocess.CalledProcessError, OSError, ValueError, SyntaxError) as exc:
            print(f"note: uv did not install ({exc}); installing with pip", file=sys.stderr)
    # --no-compile: pip would byte-compile all of the 16,000 modules installed (56 s of
    # CPU for the test extras); Python compiles the quarter any process imports, once,
    # when first imported (keep_bytecode: even where PYTHONDONTWRITEBYTECODE is set).
    _run(PYTHON, "-m", "pip", "install", *_PIP_QUIET, "--no-compile", *requirements)


def _install_with_uv(requirements: list[str]) -> bool:
    """The install by uv; False (nothing done) where pip's configuration has a setting
    that uv is not given."""
    config = subprocess.run(
        [str(PYTHON), "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    translated = uv_options(config)
    if translated is None:
        print(
            "note: pip's configuration has pip-only settings; installing with pip", file=sys.stderr
        )
        return False
    options, environment = translated
    uv = BIN / ("uv.exe" if sys.platform == "win32" else "uv")
    if not uv.exists():
        _run(PYTHON, "-m", "pip", "install", *_PIP_QUIET, "--no-compile", "uv")
    environment.update(os.environ)  # (the caller's own variables win)
    # As pip: every index's versions, the best taken (uv's default takes a package from
    # the first index that has it); pre-releases only where a requirement names one (uv
    # took sympy 1.14.0rc1, not pip's 1.14.0, for mpmath 1.4.1, not pip's 1.3.0); no
    # bytecode, as pip's --no-compile (uv's default).
    strategy = ["--index-strategy", "unsafe-best-match", "--prerelease", "explicit"]
    _run(
        uv,
        "pip",
        "install",
        "--python",
        PYTHON,
        "--quiet",
        *strategy,
        *options,
        *requirements,
        env=environment,
    )
    return True


def report(args: list[str]) -> None:
    # in the caller's folder: `python3 ../tasks.py report preds.npz --output r.html` reads
    # ./preds.npz and writes ./r.html (from the clone's folder, it said "no such file" or
    # read and wrote the clone's own)
    ensure_environment("report")
    _run(BIN / "crossent", "report", *args, cwd=Path.cwd())


def demo(args: list[str]) -> None:
    ensure_environment("demo")
    _run(BIN / "crossent", "demo", *args, cwd=Path.cwd())


def ensure_browser() -> None:
    """Chromium for the browser tests (HTML report, docs site): installed from Debian when run as
    root on a Debian-like machine (CI), else the test skips.  CROSSENT_NO_BROWSER=1 opts out."""
    if os.environ.get("CROSSENT_NO_BROWSER") or shutil.which("chromedriver"):
        return
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        print("note: no Chromium; the browser test of the HTML report will skip", file=sys.stderr)
        return
    command = ["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"]
    print("+", " ".join(command), file=sys.stderr, flush=True)
    try:
        done = subprocess.run(command, stdout=subprocess.DEVNULL, check=False, timeout=600)
        installed = done.returncode == 0
    except subprocess.TimeoutExpired:
        installed = False
    if not installed:
        print("note: Chromium did not install; the browser test will skip", file=sys.stderr)


def _sphinx(args: list[str]) -> list[str | Path]:
    """The Sphinx command: warnings as errors, every tutorial executed afresh (-E)."""
    return [
        PYTHON,
        "-m",
        "sphinx",
        "-E",
        "-W",
        "--keep-going",
        "-q",
        "-b",
        "html",
        "-d",
        DOCS_BUILD / "doctrees",
        *args,
        ROOT / "docs",
        DOCS_BUILD / "html",
    ]


def _publish_site() -> None:
    shutil.rmtree(SITE, ignore_errors=True)
    shutil.copytree(DOCS_BUILD / "html", SITE)
    print(f"documentation built: {SITE / 'index.html'}", file=sys.stderr)


def build_docs(args: list[str]) -> None:
    """Sphinx, warnings as errors, every tutorial executed afresh (-E), into site/."""
    _run(*_sphinx(args))
    _publish_site()


def keep_bytecode() -> None:
    """Let the task's Python processes cache the bytecode they compile, under ``.venv``.

    With ``PYTHONDONTWRITEBYTECODE`` set (as on this project's machines) no process writes a
    ``.pyc``, so every one of the task's processes compiled from source each module it
    imports: the test workers' collection took 34 s of CPU each (13 s with the bytecode
    cached), each fresh process importing torch, Numba and crossent 7 s (3 s), and there
    are the docs' notebook kernels, the Numba cache processes and the tests' own
    subprocesses. Then the variable is dropped for this task's processes and the bytecode
    goes to ``.venv/pycache`` (``PYTHONPYCACHEPREFIX``), so nothing is written next to
    the sources, as the variable intends; without it Python's own default stands.
    """
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        os.environ.setdefault("PYTHONPYCACHEPREFIX", str(VENV / "pycache"))


def docs(args: list[str]) -> None:
    keep_bytecode()
    ensure_environment("docs")
    os.environ.setdefault("NUMBA_CACHE_DIR", str(numba_cache()))
    build_docs(args)


def test(args: list[str]) -> None:
    _TIMED["on"] = True
    keep_bytecode()
    # CI has two cores and these steps are mostly single-threaded, so they overlap:
    # Chromium's apt install beside pip; the Numba cache tests' two processes beside
    # mypy, then beside the docs build and pytest (which fills the cores they leave idle).
    with ThreadPoolExecutor(max_workers=1) as pool:
        browser = pool.submit(ensure_browser)
        ensure_environment("test")
        browser.result()
    _run(PYTHON, "-m", "ruff", "format", "--check", ".")
    _run(PYTHON, "-m", "ruff", "check", ".")
    # Set before the docs build: its tutorials compile the row kernels, which the test
    # workers then load from this cache instead of compiling them again (each, about
    # 20 s per kernel and dtype).
    os.environ.setdefault("NUMBA_CACHE_DIR", str(numba_cache()))
    typing = _start(PYTHON, "-m", "mypy")
    # The test modules' bytecode, asserts rewritten, cached once beside mypy and the
    # harness: each of pytest's workers compiled all of them itself on a fresh clone,
    # about 10 s of its collection CPU (tests/bytecode_ahead.py). Done before pytest starts.
    bytecode = _start(PYTHON, ROOT / "tests" / "bytecode_ahead.py")
    # The whole suite (as CI): the cold and the warm process of the Numba cache tests
    # (minutes of one core, tests/numba_cache_harness.py) run now, beside mypy, the docs
    # build and pytest, not on a test worker; the tests read what they printed from this
    # folder.
    ahead = None if args else Path(tempfile.mkdtemp(prefix="crossent-numba-cache-runs-"))
    cache_runs = building = tests = None
    built = Path(tempfile.mkdtemp(prefix="crossent-site-")) / "built"
    docs_failed: subprocess.CalledProcessError | None = None
    try:
        if ahead is not None:
            os.environ["CROSSENT_NUMBA_CACHE_RUNS"] = str(ahead)
            cache_runs = _start(PYTHON, ROOT / "tests" / "numba_cache_harness.py", ahead)
            # The docs build after mypy: the harness's first sections compile kernels
            # that the pages call too (the measures' row kernels, about 57 s of CPU)
            # and hand them to NUMBA_CACHE_DIR as each ends; with this head start
            # (and those pages read last, waiting for them: docs/_ext/crossent_order.py)
            # the build loads them instead of compiling them at the same time. Both
            # cores stay busy: mypy and the harness.
            _finish(typing)
        if os.environ.get("CROSSENT_NO_DOCS"):  # opt out; the site's tests then skip
            print("note: CROSSENT_NO_DOCS is set; the site is not rebuilt", file=sys.stderr)
        else:
            # Warnings fail CI; the tests open the built site in a browser. Built beside
            # pytest: while its pages wait for the harness's kernels (a minute or more
            # of one core), the test workers use that core. The tests that read site/
            # run last and wait for ``built`` (tests/conftest.py), so no earlier
            # build's site is read: it is removed now.
            shutil.rmtree(SITE, ignore_errors=True)
            os.environ["CROSSENT_SITE_BUILT"] = str(built)
            log = built.parent / "sphinx.log"  # shown when it ends, not among the dots
            building = _start(*_sphinx([]), output=log)
        # pytest a step below the harness and the docs build in priority: the cores it
        # takes are those they leave idle, and the harness seeds its kernels (which the
        # tests would otherwise compile) as early as before.
        _finish(bytecode, check=False)  # (if it failed, the workers compile them)
        tests = _start(PYTHON, "-m", "pytest", *PARALLEL, *args, nice=PYTEST_NICE)
        if building is not None:
            try:
                _finish(building)
            except subprocess.CalledProcessError as error:
                docs_failed = error  # reported once the tests are done too
            finally:
                sys.stderr.buffer.write(log.read_bytes())
                sys.stderr.flush()
            if docs_failed is None:
                _publish_site()
            built.touch()  # the site's tests go on (and skip if it was not built)
        _finish(typing)
        _finish(tests)
        if docs_failed is not None:
            raise docs_failed
    finally:
        built.touch()
        for process in (tests, building, typing, bytecode):  # only if interrupted
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        # Done by now unless pytest stopped early (the tests wait for its results);
        # if it failed, the tests ran the two processes themselves.
        if cache_runs is not None:
            cpu = _children_cpu()
            if cache_runs.poll() is None:
                cache_runs.kill()
            cache_runs.wait()
            command, wall = _STARTED.pop(cache_runs.pid)
            _took(command, wall, cpu, "(wall: until pytest ended)")
        if ahead is not None:
            shutil.rmtree(ahead, ignore_errors=True)
        shutil.rmtree(built.parent, ignore_errors=True)


def numba_cache() -> Path:
    """The Numba cache folder of the sources as they are now: ``.numba_cache/<hash>``.

    Numba checks a cached kernel against its own module's file only, not against the
    modules it imports (``crossent/_intrinsics_numba.py`` says more), so in a working
    tree an edited helper could leave tests running the old machine code, passing or
    failing on what is no longer there. Keyed by a hash of every source file, the cache
    is found again while the sources stay as they are and starts empty after any edit;
    the folders of earlier sources are removed. (``NUMBA_CACHE_DIR``, when set, wins.)
    """
    digest = hashlib.sha256()
    for source in sorted((ROOT / "src").rglob("*.py")):
        digest.update(str(source.relative_to(ROOT)).encode())
        digest.update(source.read_bytes())
    folder = ROOT / ".numba_cache" / digest.hexdigest()[:16]
    if folder.parent.is_dir():
        for old in folder.parent.iterdir():
            if old != folder and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
    return folder


TASKS = {"report": report, "demo": demo, "test": test, "docs": docs}


def main(argv: list[str]) -> int:
    """Run the task ``argv[0]`` with the rest of ``argv``; the exit status.

    No task, or ``-h``/``--help``, prints this file's usage (on stdout with status 0 for
    ``--help``, on stderr with status 2 when no task is given); an unknown task is one line
    on stderr naming it and the tasks, status 2.
    """
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    if argv[0] not in TASKS:
        choices = ", ".join(TASKS)
        print(
            f"tasks.py: error: unknown task {argv[0]!r} (choose from {choices};"
            " python3 tasks.py --help)",
            file=sys.stderr,
        )
        return 2
    try:
        TASKS[argv[0]](argv[1:])
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    except KeyboardInterrupt:  # Ctrl-C: the command said "interrupted"; no traceback here
        print("tasks.py: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
