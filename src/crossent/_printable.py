"""Text from the user (class, model, column and file names) as it may be shown: its
control and format characters written as escapes.  The command line prints with it, and
the HTML report writes names with it (then HTML-escaped), so that a name shows the same
``\\x1b`` on the terminal and on the page."""

from __future__ import annotations

import unicodedata

__all__ = ["printable"]

_HIDDEN = frozenset({"Cc", "Cf"})
"""Unicode's control and format characters: escape sequences, the bell, carriage returns,
newlines, bidirectional overrides, zero-width characters."""


def _shown(character: str) -> str:
    if unicodedata.category(character) not in _HIDDEN:
        return character
    code = ord(character)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


def printable(text: str, *, keep: str = "") -> str:
    r"""``text`` with its control and format characters written as escapes (``\x1b``,
    ``\u202e``), except those in ``keep``.

    Column names, row ids and file names come from the user's files; printed as they
    are, an escape sequence in a CSV header (``\x1b]0;title\x07``, ``\x1b[2J``) reached
    the terminal and acted on it, and a newline or carriage return in a name forged lines
    of the report or of a one-line error.  In the HTML report, a NUL, an escape or a
    DEL in a class or model name reached the page as it was (``html.escape`` leaves
    control characters alone; HTML forbids them).  The JSON report keeps the text as it
    is (JSON escapes control characters itself)."""
    if text.isprintable():  # none of them (nor other unusual characters): as it is
        return text
    return "".join(c if c in keep else _shown(c) for c in text)
