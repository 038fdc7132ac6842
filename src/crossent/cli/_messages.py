"""The library's error messages, said in the command line's terms.

The library names its arguments (`probs`, or the form such as `logits`; `axis`) and offers
``validate=False``; on the command line the array is the file's (the ``.npz`` member, or
a table's prediction columns), there is no axis to choose, and validation cannot be
turned off.  :func:`in_file_terms` rewrites those phrases and nothing else.
"""

from __future__ import annotations

import re
import unicodedata

from ._dataset import Dataset

__all__ = ["in_file_terms", "printable"]

_VALIDATE_FALSE = re.compile(r",? or pass validate=False\.?|;? pass validate=False[^.]*\.?")


def in_file_terms(message: str, dataset: Dataset) -> str:
    """``message`` with the prediction array named as in the file and no library-only advice."""
    message = _VALIDATE_FALSE.sub(".", message).replace("..", ".").replace(": .", ".")
    message = message.replace(" along `axis`", "")
    if dataset.what:
        # "`logits` (logits) must not be +inf": the file's name for the array says it once
        message = message.replace(f"`{dataset.form}` ({dataset.form})", dataset.what)
        message = message.replace(f"`probs` ({dataset.form})", dataset.what)
        message = message.replace("`probs`", dataset.what)
        message = message.replace(f"`{dataset.form}`", dataset.what)
    if dataset.labels_source:  # --labels: the labels are another file's
        message = message.replace("`labels`", f"the labels in {dataset.labels_source}")
    if dataset.dtype_hint and "must sum to 1" in message:
        message = f"{message} {dataset.dtype_hint}"
    return message


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
    of the report or of a one-line error.  The JSON report keeps the text as it is (JSON
    escapes control characters itself)."""
    if text.isprintable():  # none of them (nor other unusual characters): as it is
        return text
    return "".join(c if c in keep else _shown(c) for c in text)
