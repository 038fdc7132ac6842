"""What to do instead: the fixes that end crossent's messages, each written once.

:func:`install_command` is the command that installs an optional extra (every
:class:`crossent.MissingDependencyError` and every "needs matplotlib" note uses it), and
:func:`non_numeric` the message for names (strings) where numbers belong, which names
the argument, the first entry that is not a number, and, for ``labels``, how to map
class names to class indices.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["NAMES_HINT", "first_non_number", "install_command", "non_numeric", "reads_as_number"]

NAMES_HINT = (
    "Map each class name to the index of its column in the predictions (their class "
    "order), e.g. labels = np.array([order[name] for name in names]) with "
    "order = {name: k for k, name in enumerate(class_names)}."
)
"""The fix for class names passed as ``labels``."""


def install_command(extra: str) -> str:
    """The command that installs the optional dependencies of ``extra``, in both forms:
    from a release and from a clone of the repository (there is no release on PyPI yet,
    so the second is the one that works today; the README installs that way)."""
    return f"pip install 'crossent[{extra}]' (from a clone: pip install '.[{extra}]')"


def reads_as_number(value: object) -> bool:
    """Whether ``value`` (a str or bytes) reads as a number (``"3"``, ``b"0.5"``; ``float``
    takes ``"nan"``, ``"inf"``, ``"1e3"`` too): the one test of the CSV cells, headers and
    labels that are text."""
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def first_non_number(values: np.ndarray) -> tuple[Any, Any] | None:
    """The index (an int, or a tuple for 2-D and up) and value of the first entry of
    ``values``, in C order, that is not a number: in a string array (dtype kind ``U`` or
    ``S``) the first that does not read as one (``'dog'`` in ``['0', 'dog']``, which
    NumPy made of ``[0, 'dog']``), else its first entry; in an object array the first
    entry that is neither a number nor a boolean.  ``None`` if there is none."""
    flat = values.reshape(-1)
    if values.dtype.kind in "US":
        texts = (k for k, v in enumerate(flat) if not reads_as_number(v))
        position = next(texts, 0 if flat.size else None)
    else:
        position = next(
            (
                k
                for k, v in enumerate(flat)
                if not isinstance(v, int | float | np.integer | np.floating | np.bool_)
            ),
            None,
        )
    if position is None:
        return None
    value = flat[position]
    if isinstance(value, np.str_ | np.bytes_):
        value = value.item()
    if values.ndim <= 1:
        return position, value
    return tuple(int(i) for i in np.unravel_index(position, values.shape)), value


def non_numeric(values: np.ndarray, *, name: str, wanted: str, got: str) -> str:
    """The message for ``values`` (a NumPy array of strings or objects) passed as ``name``:
    ``"`name` must be {wanted}; got {got} (index i is 'cat')."``, then for ``labels`` the
    fix (:data:`NAMES_HINT`).  ``got`` says what was seen (``"dtype <U3"``)."""
    found = first_non_number(values)
    if found is None:
        where = ""
    elif values.ndim == 0:
        where = f" (it is {found[1]!r})"
    else:
        where = f" (index {found[0]} is {found[1]!r})"
    message = f"`{name}` must be {wanted}; got {got}{where}"
    held = "held as Python objects" if values.dtype.kind == "O" else "written as text"
    if name != "labels":
        if found is None:  # every entry is a number: say so, and how to make them one
            return f"{message}. They are numbers {held}: pass {name}.astype(np.float64)."
        return message
    if found is None or reads_as_number(found[1]):  # every entry is a number, or reads as one
        return f"{message}. They are numbers {held}: pass labels.astype(np.int64)."
    return f"{message}. {NAMES_HINT}"
