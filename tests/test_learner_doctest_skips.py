"""The public examples that ``--doctest-modules`` skips, run where they can run.

Every example in the docstrings of ``crossent.__all__`` is collected as a doctest
(pyproject's ``--doctest-modules``). A line marked ``# doctest: +SKIP`` is not run
there, because it needs an optional dependency (``plot_reliability_diagram`` needs
matplotlib, an extra). Here each such docstring runs whole, the marks removed, and
skips only when the optional dependency is missing.
"""

from __future__ import annotations

import doctest
import inspect
import io

import pytest

import crossent

SKIP = "# doctest: +SKIP"


def _with_skips() -> list[str]:
    return [
        name
        for name in crossent.__all__
        if inspect.isroutine(getattr(crossent, name))
        and SKIP in (getattr(crossent, name).__doc__ or "")
    ]


def test_learner_the_skipped_examples_are_known() -> None:
    # A new skip belongs here only if its line cannot run without an optional extra.
    assert _with_skips() == ["plot_reliability_diagram"]


@pytest.mark.parametrize("name", _with_skips())
def test_learner_skipped_example_runs_with_its_dependency(name: str) -> None:
    obj = getattr(crossent, name)
    text = (obj.__doc__ or "").replace(SKIP, "")
    test = doctest.DocTestParser().get_doctest(text, {}, name, None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    report = io.StringIO()
    result = runner.run(test, out=report.write)
    if result.failed and "MissingDependencyError" in report.getvalue():
        pytest.skip(f"{name}'s example needs an optional dependency")
    assert result.attempted > 0
    assert result.failed == 0, report.getvalue()
