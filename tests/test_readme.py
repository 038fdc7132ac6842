"""The README's examples are executed, so they stay true."""

from __future__ import annotations

import doctest
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples() -> None:
    result = doctest.testfile(str(README), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5
    assert result.failed == 0


def test_readme_quickstart_is_exactly_the_two_task_commands() -> None:
    text = README.read_text()
    block = text.split("## Quickstart", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["python3 tasks.py report", "python3 tasks.py test"]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "python3 tasks.py test" in ci
