"""The test modules' bytecode, written once before the test workers start (``tasks.py test``).

pytest compiles each test module and conftest with its asserts rewritten and caches the
result (``<name>.cpython-311-pytest-<version>.pyc`` under ``__pycache__``, or under
``PYTHONPYCACHEPREFIX``). On a fresh clone nothing is cached, and pytest-xdist's two
workers collect every test module at the same time: each parsed, rewrote and compiled the
578 modules (4 MB of source) itself, about 10.7 s of its 28.6 s of collection CPU (17.9 s
with the cache warm). :func:`main` writes those caches once, beside the documentation
build, and the plain modules the tests import (``oracles``, ``strategies``, ...) with
:mod:`compileall`; each worker then reads them.

The same bytes as pytest's own: the code comes from pytest's ``_rewrite_test`` and is
written by its ``_write_pyc``, named by its ``get_cache_dir`` and ``PYC_TAIL``, so a worker
finds and checks it exactly as one it wrote itself (a checked-hash pyc: pytest compares
the source's hash before using it, so an edited module is compiled again). The one
setting that changes rewritten code, ``enable_assertion_pass_hook``, is off in this
project (``rewrite_ahead`` writes nothing where it is set). Where pytest's internals differ
(another version), nothing is written and the workers compile as before.
"""

from __future__ import annotations

import compileall
import sys
import tomllib
from collections.abc import Iterable
from fnmatch import fnmatch
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent


def rewritten_by_pytest(path: Path, patterns: Iterable[str]) -> bool:
    """Whether pytest imports ``path`` with its asserts rewritten: a conftest, or a module
    whose name matches ``python_files`` (pytest's ``_should_rewrite``)."""
    return path.name == "conftest.py" or any(fnmatch(path.name, p) for p in patterns)


def rewrite_ahead(paths: Iterable[Path]) -> int:
    """Write pytest's cached rewritten code of each of ``paths`` not cached yet (where
    ``sys.pycache_prefix`` says, as pytest does); how many were written. Nothing, and 0,
    where pytest's internals are not the ones known here."""
    try:
        from _pytest.assertion import rewrite
    except ImportError:
        return 0
    needed = ("_read_pyc", "_rewrite_test", "_write_pyc", "get_cache_dir", "PYC_TAIL")
    if not all(hasattr(rewrite, name) for name in needed):
        return 0
    state = SimpleNamespace(trace=lambda message: None)
    written = 0
    for path in paths:
        folder = rewrite.get_cache_dir(path)
        pyc = folder / (path.name[:-3] + rewrite.PYC_TAIL)
        if rewrite._read_pyc(path, pyc) is not None:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        source_hash, code = rewrite._rewrite_test(path, None)
        written += bool(rewrite._write_pyc(state, code, source_hash, pyc))
    return written


def main(root: Path = ROOT) -> int:
    """Cache the bytecode of ``root``'s tests and conftests (pytest's rewritten form) and of
    the other modules under ``tests`` (Python's own); the exit status (0)."""
    options = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["pytest"]
    ini = options["ini_options"]
    if ini.get("enable_assertion_pass_hook"):
        return 0  # (rewritten code would differ from what rewrite_ahead writes)
    patterns = ini.get("python_files", ["test_*.py", "*_test.py"])
    patterns = patterns.split() if isinstance(patterns, str) else patterns
    sources = [root / "conftest.py", *sorted((root / "tests").rglob("*.py"))]
    rewritten = [p for p in sources if p.is_file() and rewritten_by_pytest(p, patterns)]
    written = rewrite_ahead(rewritten)
    plain = [str(p) for p in sources if p.is_file() and p not in rewritten]
    for name in plain:  # Python's own cache, as an import writes it
        compileall.compile_file(name, quiet=2)
    print(f"bytecode ahead: {written} of {len(rewritten)} test modules rewritten", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
