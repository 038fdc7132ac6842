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
from typing import Any, TypeVar

__all__ = ["entry_point", "kept_table"]

_Table = TypeVar("_Table")


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


def kept_table(
    make: Callable[[list[Callable[..., Any]]], _Table],
    calls: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]],
    dispatchers: Sequence[Callable[..., Any]],
    tables: dict[Any, _Table],
    key: Any,
) -> _Table:
    """``make(functions)``, a table of: for each ``(function, args)`` of ``calls`` its
    :func:`entry_point`, or the function itself where none is picked; then
    ``dispatchers`` as they are. Kept as ``tables[key]`` where every entry point was
    picked (none of ``calls``' functions is patched, and Numba compiles)."""
    picked = [entry_point(function, *args) for function, args in calls]
    found = [entry or function for entry, (function, _) in zip(picked, calls, strict=True)]
    table = make([*found, *dispatchers])
    if None not in picked:
        tables[key] = table
    return table
