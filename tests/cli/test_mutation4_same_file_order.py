"""Mutation pass (branch ``mutation4``) over ``cli/_files.check_distinct``.

The sixth hostile pass tested ``report FILE -`` with standard input reading ``FILE``
(``-`` second); a mutant that answered "not the same file" whenever ``-`` came first
(``_one_file``'s first branch returning False) passed every CLI test.  The rule does not
depend on the order: ``report - FILE`` compares one model with itself too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .test_issue13_hostile_fifth_pass import _FAST, _one_line_error

pytest.importorskip("rich")


def test_mutation4_standard_input_first_reading_the_other_file_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    table = tmp_path / "p.csv"
    table.write_text("label,a,b\n0,0.9,0.1\n1,0.6,0.4\n0,0.7,0.3\n")
    with table.open() as handle:
        monkeypatch.setattr(sys, "stdin", handle)
        err = _one_line_error(capsys, ["report", "-", str(table), "--json", *_FAST])
    assert err == (
        f"crossent: error: '-' (standard input) and {table} are the same file; compare "
        "different models' files\n"
    )
