"""One-line ``repr`` of crossent's estimators and states, in :class:`crossent.Report`'s
style: ``Name(key=value, ...)``, the fitted parameters (or ``unfitted``) and the options
that differ from the defaults, numbers to 4 significant digits."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["FIXED_LIMIT", "number", "numbers", "one_line", "options"]

FIXED_LIMIT = 1e15
"""The magnitude from which numbers printed with a fixed number of decimals (the
report's ``fmt`` and its gates, ``crossent explain``'s ``fmt``) are written in
scientific notation instead (a surprisal of 1e15 nats: logits of that size; 1e308 in
fixed notation is 309 digits)."""


def number(value: Any) -> str:
    """``value`` to 4 significant digits: ``1.734``, ``-0.3``, ``inf``, ``nan``."""
    return f"{float(value):.4g}"


def numbers(values: Any) -> str:
    """A vector of parameters: every entry (``[1.1, 0.95, 1.2]``) up to 4 of them, else
    their range (``[0.91 .. 1.3]``), so the line stays short for 1000 classes."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    if flat.size <= 4:
        return "[" + ", ".join(number(v) for v in flat) + "]"
    return f"[{number(flat.min())} .. {number(flat.max())}]"


def options(obj: object, defaults: dict[str, Any]) -> list[str]:
    """``key=value`` for each option of ``obj`` whose value is not its default."""
    return [
        f"{key}={getattr(obj, key)!r}"
        for key, default in defaults.items()
        if getattr(obj, key, default) != default
    ]


def one_line(name: str, parts: Iterable[str]) -> str:
    """``name(part, part, ...)``."""
    return f"{name}({', '.join(parts)})"
