"""The width that ``crossent explain`` and ``crossent demo`` write for: 80 columns, the
terminal a learner is assumed to have (their tables fit it; their prose is wrapped to it
here, where a terminal would break it mid-word)."""

from __future__ import annotations

import textwrap

__all__ = ["WIDTH", "fill_paragraph", "fit_width"]

WIDTH = 80
"""The columns of the terminal that ``explain`` and ``demo`` write for."""


def _fill(text: str, indent: str, more: str, width: int) -> str:
    return textwrap.fill(
        text,
        width=width,
        initial_indent=indent,
        subsequent_indent=indent + more,
        break_long_words=False,  # a long word (a number, a formula) stays whole
        break_on_hyphens=False,  # "-log", "1-y" are not places to break
    )


def fit_width(text: str, *, width: int = WIDTH) -> str:
    """Each line of ``text`` broken at spaces into lines of at most ``width`` columns;
    the lines a line is broken into after its first are indented two more spaces, so
    they read as one.  A line that fits is kept as it is (its spacing too)."""
    return "\n".join(
        line
        if len(line) <= width
        else _fill(line.strip(" "), " " * (len(line) - len(line.lstrip(" "))), "  ", width)
        for line in text.split("\n")
    )


def fill_paragraph(lines: tuple[str, ...], *, indent: str, width: int = WIDTH) -> str:
    """``lines``, one paragraph, joined and filled to ``width`` columns, each line
    starting with ``indent``."""
    return _fill(" ".join(line.strip() for line in lines), indent, "", width)
