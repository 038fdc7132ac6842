"""Exceptions raised by crossent.

Every error a caller can provoke with bad input is an :class:`InputError`, which is
also a :class:`ValueError`, or an :class:`InputTypeError`, which is also a
:class:`TypeError`; code that already catches the built-in exceptions keeps working.
"""

from __future__ import annotations

__all__ = ["CrossentError", "InputError", "InputTypeError"]


class CrossentError(Exception):
    """Base class of every exception raised deliberately by crossent."""


class InputError(CrossentError, ValueError):
    """An argument has the right type but an invalid value (range, shape, normalisation)."""


class InputTypeError(CrossentError, TypeError):
    """An argument has the wrong type or dtype (complex probabilities, float labels, ...)."""
