"""Compiled functions called past Numba's dispatcher (issue 13, small inputs).

A call of a Numba dispatcher works out its arguments' types to pick the compiled
overload, every time: about a quarter of a microsecond, of the few microseconds a small
call takes, for each compiled step of it. The lean paths call their steps between
NumPy's ufuncs with arguments of one set of types per dtype (C-contiguous arrays they
made or checked, Python floats and bools), so they pick the overload once per dtype,
with :func:`entry_point`, and call that: the compiled wrapper that unboxes the
arguments and runs the function, which is what the dispatcher itself calls.

An entry point checks no types (Numba's unboxing of an array checks its item size and
nothing else): its caller must pass exactly the types it was picked for. Where Numba
keeps no overloads (``NUMBA_DISABLE_JIT``, or a Numba whose dispatcher is laid out
otherwise) :func:`entry_point` gives the dispatcher back, and the calls are the
dispatcher's as before.

This module does not import Numba: its callers hand it their dispatchers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["entry_point"]


def entry_point(dispatcher: Callable[..., Any], *args: Any) -> Callable[..., Any]:
    """The compiled function that ``dispatcher(*args)`` runs, for arguments of the types
    of ``args``: one call of ``dispatcher(*args)`` compiles it or loads it from Numba's
    cache (so ``args`` are written as the call writes them); ``dispatcher`` itself where
    Numba keeps no such overload."""
    dispatcher(*args)
    try:
        key = tuple(dispatcher.typeof_pyval(arg) for arg in args)  # type: ignore[attr-defined]
        found: Callable[..., Any] = dispatcher.overloads[key].entry_point  # type: ignore[attr-defined]
    except (AttributeError, KeyError, TypeError):
        return dispatcher
    return found
