"""Issue 13, CI time: what ``tests/conftest.py`` does to make collecting the suite cheaper.

Each pytest-xdist worker collects all of the suite's 20,000 items itself. Two changes cut
that collection's CPU (benchmarks/RESULTS.md, "Collection CPU of the test workers"): the
cyclic garbage collector paused while the test modules are imported and what they left
frozen (:func:`gc.freeze`), and no doctest collector for the files under ``tests`` (which
hold no examples). These tests check that both are in force, and that no file here holds
an example that the second change would leave unrun.
"""

from __future__ import annotations

import gc
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

#: A doctest example's prompt at the start of a line (written so that this file holds none).
_PROMPT = re.compile(r"^\s*" + re.escape(">" * 3) + r"( |$)", re.MULTILINE)


def test_issue13_collection_left_its_objects_frozen_and_the_collector_on() -> None:
    # The modules, functions and items collection made, and the libraries they imported:
    # 57,000 objects where only this file is collected, a million for the whole suite.
    assert gc.get_freeze_count() > 10_000
    assert gc.isenabled()


def test_issue13_collection_no_doctest_collector_under_tests(
    request: pytest.FixtureRequest,
) -> None:
    """The collectors pytest makes for this very file: its test module, no doctest module
    (``--doctest-modules`` would add one)."""
    module = request.node.getparent(pytest.Module)
    collectors = request.config.hook.pytest_collect_file(
        file_path=module.path, parent=module.parent
    )
    kinds = [type(c).__name__ for c in collectors]
    assert kinds == ["Module"], kinds


def test_issue13_collection_no_doctests_under_tests() -> None:
    """No file under ``tests`` holds a doctest example, so none goes unrun for want of a
    doctest collector there (a file that gains one fails here: collect it where it is
    run, or move the example into a test)."""
    found = [
        f"{path.relative_to(TESTS)}:{text.count(chr(10), 0, match.start()) + 1}"
        for path in sorted(TESTS.rglob("*.py"))
        if (match := _PROMPT.search(text := path.read_text(encoding="utf-8"))) is not None
    ]
    assert not found, found
