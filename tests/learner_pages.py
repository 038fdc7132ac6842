"""The tutorial pages as the learner tests read them, and their 40-digit oracle.

Shared by ``tests/docs/test_learner_tutorial_prose.py`` and
``tests/docs/test_learner_reading16.py``: a page's text with its line breaks and runs
of spaces as single spaces (so a test can quote a sentence as typed, whatever the
wrapping), and an mpmath context at 40 digits of its own (not the global one, which
other test modules set).
"""

from __future__ import annotations

from pathlib import Path

import mpmath

__all__ = ["MP", "ROOT", "TUTORIALS", "prose"]

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "docs" / "tutorials"
MP = mpmath.mp.clone()
MP.dps = 40


def prose(name: str) -> str:
    """``docs/tutorials/<name>`` with its line breaks and runs of spaces as single spaces."""
    return " ".join((TUTORIALS / name).read_text().split())
