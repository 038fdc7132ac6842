"""Compiled functions called past Numba's dispatcher (issue 13, small inputs).

A call of a Numba dispatcher works out its arguments' types to pick the compiled
overload, every time: about a quarter of a microsecond, of the few microseconds a small
call takes, for each compiled step of it. The lean paths call their steps between
NumPy's ufuncs with arguments of one set of types per dtype (C-contiguous arrays they
made or checked, Python floats and bools), so they pick the overload once per dtype,
with :func:`entry_point`, and call that: the compiled wrapper that unboxes the
arguments and runs the function, which is what the dispatcher itself calls.

An entry point checks no types (Numba's unboxing of an array checks its item size and
nothing else): its caller must pass exactly the types it was picked for.
:func:`entry_point` gives None for a function that is no Numba dispatcher (one patched
on its module, as the tests' spies and mutants are; every function under
``NUMBA_DISABLE_JIT``): the caller then calls the function itself, and picks again later.

Numba is imported by :func:`entry_point` (its callers have it), not by this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["entry_point", "entry_points"]


def entry_point(function: Callable[..., Any], *args: Any) -> Callable[..., Any] | None:
    """The compiled function that ``function(*args)`` runs, for arguments of the types
    of ``args`` (only their types are looked at): the dispatcher's overload for them,
    compiled or loaded from Numba's cache if need be; None where ``function`` is not a
    Numba dispatcher."""
    from numba.core.dispatcher import Dispatcher

    if not isinstance(function, Dispatcher):
        return None
    found: Callable[..., Any] = function.compile(tuple(function.typeof_pyval(a) for a in args))
    return found


def entry_points(
    calls: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]],
) -> tuple[list[Callable[..., Any]], bool]:
    """For each ``(function, args)`` of ``calls``, its :func:`entry_point`, or the function
    itself where none is picked; and whether every one was picked (a table of them may
    then be kept: none is a patched function)."""
    picked = [entry_point(function, *args) for function, args in calls]
    found = [entry or function for entry, (function, _) in zip(picked, calls, strict=True)]
    return found, None not in picked
