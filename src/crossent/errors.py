"""Exceptions raised by crossent.

Every error a caller can provoke with bad input is an :class:`InputError`, which is
also a :class:`ValueError`, or an :class:`InputTypeError`, which is also a
:class:`TypeError`; a missing optional dependency is a :class:`MissingDependencyError`,
which is also a :class:`ModuleNotFoundError`.  Code that already catches the built-in
exceptions keeps working.
"""

from __future__ import annotations

__all__ = ["CrossentError", "InputError", "InputTypeError", "MissingDependencyError"]


class CrossentError(Exception):
    """Base class of every exception raised deliberately by crossent."""


class InputError(CrossentError, ValueError):
    """An argument has the right type but an invalid value (range, shape, normalisation)."""


class InputTypeError(CrossentError, TypeError):
    """An argument has the wrong type or dtype (complex probabilities, float labels, ...)."""


class MissingDependencyError(CrossentError, ModuleNotFoundError):
    """An optional dependency is not installed; the message names the extra to install
    (for instance ``pip install 'crossent[plot]' (from a clone: pip install '.[plot]')``)."""
