"""Numbers typed on the command line, read as float64 without changing their meaning.

``float`` rounds every decimal to the nearest float64, which is what a number on the
command line means, except where the rounding changes what was typed: ``1e-400`` becomes
0 (so ``explain --binary --y 1 --p 1e-400`` printed an infinite loss for a finite one,
921 nats, and ``--max-ece 1e-400`` a gate of 0) and ``1e309`` infinity.  :func:`decimal`
refuses those, naming the text as typed; ``nan`` and ``inf`` spelled out pass, for the
caller's own checks (which name them).  A subnormal (``1e-320``) is kept: it is the
nearest float64, only coarser.  A negative zero is read as 0: ``--max-ece -0`` recorded
the threshold ``-0.0``.

Digits are the ASCII ``0``-``9``, as in a CSV's cells (whose readers refuse others):
``float`` and ``int`` also read every script's decimal digits, so ``--p`` written with
U+09E6 "." U+09EA (Bengali 0.4, whose four looks like a Latin 8) was the probability 0.4,
and ``--label`` U+0661 (Arabic-Indic one) the class 1.
:func:`ascii_digits` refuses such text, naming the digit and the value it stands for.
"""

from __future__ import annotations

import math
import unicodedata

__all__ = ["ascii_digits", "decimal"]


def _nonzero(text: str) -> bool:
    """Whether the decimal ``text`` has a digit other than 0 before its exponent."""
    mantissa = text.lower().split("e", 1)[0]
    return any(c.isdigit() and unicodedata.digit(c, 0) != 0 for c in mantissa)


def ascii_digits(text: str) -> str:
    """``text``, or a :class:`ValueError` naming its first digit that is not ASCII 0-9 (a
    number written in another script: ``float`` and ``int`` would read it)."""
    if text.isascii():
        return text
    for c in text:
        if c.isdigit() and not c.isascii():
            value = unicodedata.digit(c, None)
            means = "" if value is None else f", the digit {value}"
            name = unicodedata.name(c, "a digit")
            raise ValueError(
                f"{text!r} holds {c!r} (U+{ord(c):04X} {name}{means}); write numbers "
                "with the ASCII digits 0-9, as in a CSV's cells"
            )
    return text


def decimal(text: str) -> float:
    """``float(text)``, or a :class:`ValueError` (its message names ``text``) for a
    decimal that float64 cannot hold: a non-zero value that underflows to 0, or a finite
    one that overflows to infinity."""
    value = float(ascii_digits(text))  # ValueError for what is no number
    if "_" in text:  # Python's digit separator: "0_05" (a typo for 0.05) is 5.0
        raise ValueError(
            f"{text!r} holds '_', which is not read as a digit separator (0_05 would be 5); "
            "write the number without it"
        )
    spelled = text.strip().lstrip("+-").lower()
    if math.isinf(value) and spelled not in ("inf", "infinity"):
        raise ValueError(f"{text!r} is beyond float64's range (about 1.8e308)")
    if value == 0 and _nonzero(text):
        raise ValueError(
            f"{text!r} is too small for float64 (it would be read as 0); write 0, or a "
            "number of at least 5e-324"
        )
    return value + 0.0  # -0.0 as 0.0
