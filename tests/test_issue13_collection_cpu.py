"""Issue 13, CI time: what ``tests/conftest.py`` does to make collecting the suite cheaper.

Each pytest-xdist worker collects all of the suite's 20,000 items itself. Two changes cut
that collection's CPU (benchmarks/RESULTS.md, "Collection CPU of the test workers"): the
cyclic garbage collector paused while the test modules are imported and what they left
frozen (:func:`gc.freeze`), and no doctest collector for the files under ``tests`` (which
hold no examples). These tests check that both are in force, and that no file here holds
an example that the second change would leave unrun; and that each full pass of the
collector during the tests freezes what it leaves, after freeing the garbage
("CI time: the collector's full passes").
"""

from __future__ import annotations

import gc
import re
import weakref
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


class _Cycle:
    """An object in a reference cycle with itself."""

    def __init__(self) -> None:
        self.me = self


def test_issue13_full_passes_free_the_garbage_then_freeze_what_is_left() -> None:
    """A full pass (here ``gc.collect()``; the same callback runs after the automatic
    ones) frees an unreachable cycle as before, then freezes the objects it left, so the
    next full pass does not walk them again (on main they stayed in the oldest
    generation: every full pass walked them)."""
    alive = [[i] for i in range(1000)]  # 1000 tracked containers, reachable
    freed: list[bool] = []
    garbage = _Cycle()
    weakref.finalize(garbage, freed.append, True)
    del garbage
    before = gc.get_freeze_count()
    gc.collect()
    assert freed == [True]  # the cycle was freed by the pass, not frozen
    assert gc.get_freeze_count() >= before + len(alive)
    assert not any(obj is alive for obj in gc.get_objects())  # frozen: no longer walked
    assert gc.isenabled()
