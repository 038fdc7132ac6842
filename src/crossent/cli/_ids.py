"""A CSV id column's values as written: numbers only where no digit of them is lost.

A CSV cell is text; read as a number, ``007``, ``000000397133``, ``0x1F``, ``1e3``,
``1.50``, ``-0`` and ``+5`` became ``7``, ``397133``, ``31``, ``1000.0``, ``1.5``, ``0``
and ``5.0``, in every table, JSON and HTML report that shows a row's id.  The rule
(:func:`exact_ids`): the id column is read as text, and its ids are numbers only when
every cell is the text of its number, as Python writes it:

.. math::

    \\operatorname{str}(\\operatorname{int}(c)) = c
    \\quad\\text{or}\\quad
    \\operatorname{repr}(\\operatorname{float}(c)) = c

for every cell ``c`` that is not missing (empty, or a null marker such as ``NA``: null,
as before), each cell the number of its own text (``3`` an integer and ``2.5`` a float in
one column).  Otherwise the whole column is text, each cell exactly as the CSV reader
gives it (quotes removed, nothing else: no cell is made a null there either).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["exact_ids", "first_repeat"]


def exact_ids(column: Any, missing: Iterable[str]) -> Any:
    """The ids of a CSV id column read as text (a pyarrow string array), as an array.

    Parameters
    ----------
    column : pyarrow.Array of string
        The cells, as the CSV reader gives them.
    missing : iterable of str
        The null markers: a cell equal to one is a missing id (None) in a column of
        numbers.

    Returns
    -------
    ndarray, shape (n,)
        int64 when every cell is an integer ``c`` with ``str(int(c)) == c``; object
        otherwise, holding ints, floats (``repr(float(c)) == c``; a NaN as the text
        ``"nan"``) and None for the missing cells, or, when one cell that is not
        missing fails both equalities, every cell's text.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    markers = pc.is_in(column, value_set=pa.array(list(missing), type=pa.string()))
    absent = markers.to_numpy(zero_copy_only=False)
    ints = _integers(column.filter(pc.invert(markers)) if absent.any() else column)
    if ints is not None and not absent.any():
        return ints
    cells = column.to_pylist()
    numbers: list[Any] = [None] * len(cells)
    if ints is not None:
        for row, value in zip(np.flatnonzero(~absent).tolist(), ints.tolist(), strict=True):
            numbers[row] = value
        return _objects(numbers)
    for row, cell in enumerate(cells):
        if absent[row]:
            continue
        value = _number(cell)
        if value is None:
            return _objects(cells)
        numbers[row] = value
    return _objects(numbers)


def _integers(cells: Any) -> Any:
    """``cells`` as int64 when each is the text of its integer (``str(int(c)) == c``),
    else None: parsed and written back by Arrow, a column at a time."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        parsed = pc.cast(cells, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if len(cells) and not pc.all(pc.equal(pc.cast(parsed, pa.string()), cells)).as_py():
        return None
    return parsed.to_numpy(zero_copy_only=False)


def _number(cell: str) -> int | float | str | None:
    """The number whose text ``cell`` is (an int, a float, or ``"nan"`` for a NaN, as
    the report gives a NaN id), or None when ``cell`` is not that text."""
    try:
        whole = int(cell)
    except ValueError:
        pass
    else:
        return whole if str(whole) == cell else None
    try:
        value = float(cell)
    except ValueError:
        return None
    if repr(value) != cell:
        return None
    return "nan" if math.isnan(value) else value


def _objects(values: list[Any]) -> Any:
    """``values`` as a one-dimensional object array (never split into a 2-D one)."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def first_repeat(ids: Any) -> tuple[Any, int, int] | None:
    """The first id that names two rows, with the row that has it first and the first
    later row that has it again (the second row as low as can be), or None when every id
    names one row.  A missing id (None, a NaN, the text ``"nan"`` of a NaN in a column
    of numbers) names no row, and ids of different types (``1`` and ``1.0``, written
    differently) are different ids.  Integers are compared in one sort."""
    values = np.asarray(ids)
    if values.dtype.kind in "mM":  # dates and durations as their text (the report's), NaT none
        values = _objects([None if np.isnat(v) else str(v) for v in values])
    if values.dtype.kind in "iub":
        order = np.argsort(values, kind="stable")
        same = np.flatnonzero(values[order[1:]] == values[order[:-1]])
        if same.size == 0:
            return None
        # of each repeated run, its first row and its second; the lowest second row wins
        firsts = order[same]
        seconds = order[same + 1]
        at = int(np.argmin(seconds))
        return values[seconds[at]].item(), int(firsts[at]), int(seconds[at])
    cells = values.tolist()
    try:
        if len(set(cells)) == len(cells):  # (one C pass: no two equal, nothing repeats)
            return None
    except TypeError:  # unhashable ids (lists): the loop below
        pass
    numbers = any(not isinstance(v, str) for v in cells if v is not None)
    seen: dict[tuple[str, Any], int] = {}
    for row, value in enumerate(cells):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if numbers and isinstance(value, str) and value == "nan":
            continue
        if isinstance(value, np.ndarray):  # (a Parquet id column of lists)
            value = value.tolist()
        key: tuple[str, Any] = (type(value).__name__, value)
        try:
            hash(value)
        except TypeError:  # (lists)
            key = (type(value).__name__, repr(value))
        first = seen.setdefault(key, row)
        if first != row:
            return value, first, row
    return None
