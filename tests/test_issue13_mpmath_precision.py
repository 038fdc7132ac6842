"""Issue 13 follow-up: mpmath's working precision is one global, so no test module sets it.

Under pytest-xdist (and without it) every test module is imported before any test runs,
so a module-level ``mpmath.mp.dps = N`` was one setting for the whole run: the last
module imported won (CI once failed 14 cases of a 60-digit oracle run at another
module's 40 digits). Each oracle now sets its own precision where it runs
(``with mpmath.workdps(N):`` or ``@mpmath.workdps(N)``), and ``tests/conftest.py``
guards it three ways: a module whose import changes the precision is a collection error
naming it; every test must start and end at mpmath's default (``MPMATH_DEFAULT_PREC``);
and this file finds any module-level setting in the sources under ``tests/`` (the
helpers too, which only their importers' collection would otherwise blame). On main:
8 files set it at module level (``test_no_module_sets_mpmath_precision_at_import``
fails) and the conftest had no guard (the other tests fail to import it).
"""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import mpmath
import pytest

import conftest

TESTS = Path(__file__).resolve().parent


def _module_level_precision_settings(source: str) -> list[int]:
    """Lines that assign ``<...>mp.dps`` or ``<...>mp.prec`` (``=``, ``+=``, annotated)
    where the module runs at import: outside function bodies and lambdas (class bodies
    and ``if``/``try``/``with`` blocks at module level run at import too)."""
    found = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            for part in ast.walk(target):
                if (
                    isinstance(part, ast.Attribute)
                    and part.attr in ("dps", "prec")
                    and ast.unparse(part.value).split(".")[-1] == "mp"
                ):
                    found.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def test_no_module_sets_mpmath_precision_at_import() -> None:
    """No ``.py`` file under ``tests/`` sets mpmath's precision at module level."""
    offenders = [
        f"{path.relative_to(TESTS)}:{line}"
        for path in sorted(TESTS.rglob("*.py"))
        for line in _module_level_precision_settings(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, offenders


def test_the_finder_sees_every_form_and_no_local_one() -> None:
    """The scan itself: module-level forms found, function-local ones and ``workdps``
    left alone."""
    source = """
import mpmath
from mpmath import mp
mpmath.mp.dps = 50
mp.prec = 200
mp.dps += 10
if True:
    mpmath.mp.dps = 40
class Oracle:
    mpmath.mp.prec = 80
def oracle():
    mpmath.mp.dps = 30
with mpmath.workdps(60):
    pass
dps = 3
"""
    assert _module_level_precision_settings(source) == [4, 5, 6, 8, 10]


def _collect_report(nodeid: str, change_to: int | None) -> SimpleNamespace:
    """``conftest.pytest_make_collect_report`` around a collection that sets mpmath's
    precision to ``change_to`` bits (None: leaves it)."""
    hook = conftest.pytest_make_collect_report(SimpleNamespace(nodeid=nodeid))  # type: ignore[arg-type]
    next(hook)
    if change_to is not None:
        mpmath.mp.prec = change_to
    report = SimpleNamespace(outcome="passed", longrepr=None)
    with pytest.raises(StopIteration) as stop:
        hook.send(report)
    assert stop.value.value is report
    return report


def test_collection_names_a_module_whose_import_sets_the_precision() -> None:
    report = _collect_report("tests/losses/test_example.py", change_to=200)
    assert mpmath.mp.prec == conftest.MPMATH_DEFAULT_PREC  # put back for the next module
    assert report.outcome == "failed"
    assert "tests/losses/test_example.py" in report.longrepr
    assert "200 bits" in report.longrepr
    assert _collect_report("tests/losses/test_other.py", change_to=None).outcome == "passed"


def test_every_test_starts_at_the_default_precision() -> None:
    """This test's own start was checked by the conftest's autouse fixture."""
    assert conftest.MPMATH_DEFAULT_PREC == 53
    assert mpmath.mp.prec == conftest.MPMATH_DEFAULT_PREC


def test_a_test_that_leaves_another_precision_fails() -> None:
    """The autouse fixture's check (at each test's start and end): fails where the
    precision is not the default, and puts the default back first."""
    conftest.check_mpmath_default_prec("Here")  # the default: passes
    mpmath.mp.dps = 40
    with pytest.raises(pytest.fail.Exception, match=r"^Here mpmath's working precision was 136"):
        conftest.check_mpmath_default_prec("Here")
    assert mpmath.mp.prec == conftest.MPMATH_DEFAULT_PREC
