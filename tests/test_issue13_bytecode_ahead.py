"""``tests/bytecode_ahead.py`` (run by ``tasks.py test`` before pytest) writes the cached
code pytest itself would write, where pytest looks for it, for the modules pytest rewrites.

Were its code not pytest's (another rewriting, another file name or folder), the workers
would either compile every module again (the 10 s it saves, lost) or run other code than
the tests' own; this file checks that a worker takes it, and that it is the same code."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from _pytest.assertion import rewrite

from bytecode_ahead import rewrite_ahead, rewritten_by_pytest

SOURCE = """
def test_sum():
    values = [1, 2, 3]
    assert sum(values) == 6, "the sum"
"""


def test_the_cached_code_is_pytests_own_and_pytest_takes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pytestconfig: pytest.Config
) -> None:
    module = tmp_path / "src" / "test_example.py"
    module.parent.mkdir()
    module.write_text(SOURCE)
    monkeypatch.setattr(sys, "pycache_prefix", str(tmp_path / "pycache"))
    assert rewrite_ahead([module]) == 1
    pyc = rewrite.get_cache_dir(module) / ("test_example" + rewrite.PYC_TAIL)
    assert pyc.is_relative_to(tmp_path / "pycache")
    cached = rewrite._read_pyc(module, pyc)  # as the workers' import hook reads it
    assert cached is not None
    assert cached == rewrite._rewrite_test(module, pytestconfig)[1]
    assert "@pytest_ar" in cached.co_names  # (asserts rewritten: pytest's helpers imported)
    assert rewrite_ahead([module]) == 0  # cached already: nothing written
    module.write_text(SOURCE.replace("6", "7"))  # edited: written again
    assert rewrite_ahead([module]) == 1
    assert rewrite._read_pyc(module, pyc) == rewrite._rewrite_test(module, pytestconfig)[1]


def test_the_modules_it_rewrites_are_those_pytest_rewrote(pytestconfig: pytest.Config) -> None:
    """Every module of ``tests`` imported so far: pytest's import hook loaded it (asserts
    rewritten) exactly where ``rewritten_by_pytest`` says so."""
    tests = Path(__file__).resolve().parent
    patterns = pytestconfig.getini("python_files")
    seen = {True: 0, False: 0}
    for name, loaded in list(sys.modules.items()):
        origin = getattr(getattr(loaded, "__spec__", None), "origin", None)
        if origin is None or not Path(origin).is_relative_to(tests):
            continue
        if name.rpartition(".")[2] != Path(origin).stem:
            continue  # loaded under another name by a test (importlib), not by an import
        by_pytest = isinstance(loaded.__spec__.loader, rewrite.AssertionRewritingHook)
        assert rewritten_by_pytest(Path(origin), patterns) == by_pytest, name
        seen[by_pytest] += 1
    assert seen[True] >= 2, seen  # this module, conftest
    assert seen[False] >= 1, seen  # bytecode_ahead
