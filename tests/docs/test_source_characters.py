"""No control characters in the sources: a tab in a docstring is almost always a
``\\t`` escape that a non-raw string (or a script writing one) turned into the character,
as ``\\tilde`` and ``\\text`` once became a tab and ``ilde``/``ext`` in the formulas of
two docstrings, which Sphinx then rendered as broken math."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(
    path
    for folder in ("src", "tests", "benchmarks", "docs")
    for pattern in ("*.py", "*.md", "*.rst")
    for path in (ROOT / folder).rglob(pattern)
    # (docs/api: written by autosummary while the docs build, which runs beside pytest in
    # ``tasks.py test``: a worker collecting mid-build would see other files than the
    # other; its text comes from the docstrings of src/, read here)
    if "_build" not in path.parts and not path.is_relative_to(ROOT / "docs" / "api")
)
ALLOWED = {"\n"}


def test_sources_found() -> None:
    assert len(SOURCES) > 100


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_control_characters(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    bad = [
        (number, line)
        for number, line in enumerate(text.split("\n"), 1)
        if any(ord(c) < 32 and c not in ALLOWED for c in line)
    ]
    assert not bad, f"control characters in {path.relative_to(ROOT)}: lines {bad[:3]}"
