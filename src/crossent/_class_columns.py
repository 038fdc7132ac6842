"""Integer class-column names: one rule for ``crossent.report`` and the CLI's tables.

A label is read as the position of a class column. When the columns are named by
integers other than ``0, 1, ..., K - 1`` (scikit-learn's ``classes_``), an integer label
could be either a name or a position: both readers refuse it rather than guess (the
CLI takes ``--integer-labels names|positions``). Shared, so that the two cannot drift
apart (issue 13).
"""

from __future__ import annotations

__all__ = ["ambiguous_integer_labels", "integer_names"]


def integer_names(classes: list[str]) -> list[int] | None:
    """The integers naming the classes, however each is written (``1``, ``-1``, and also
    ``01``, ``+1`` or `` 1``: a table's reader reads the label ``01`` as the integer 1,
    so the column named ``01`` is a name that label may mean); None if a class has
    another name."""
    values = []
    for name in classes:
        try:
            values.append(int(name))
        except ValueError:
            return None
    return values


def _integer(name: str) -> int | None:
    try:
        return int(name)
    except ValueError:
        return None


def ambiguous_integer_labels(classes: list[str]) -> bool:
    r"""Whether integer labels beside class columns with these names could be either
    their names or their positions.

    A label :math:`y` is read as the position of a class column,
    :math:`y \in \{0, \dots, K - 1\}`.  When one of :math:`K \ge 2` class columns is
    named by an integer (in any spelling :func:`integer_names` reads) other than its
    position (scikit-learn's ``classes_`` ``[1, 2, 3]`` or ``[-1, 1]``, the zero-padded
    ``01, 02``, or ``1, other, 0``), an integer label could be a column's name or its
    position, and which is written nowhere: a test set without the last class would be
    read shifted, with no error.  Names that are their positions (``0, 1``, ``00, 01``,
    ``0, 1, other``) mean the same either way.  One class column is :math:`P(y = 1)` of
    a binary problem, whose labels are 0 and 1 whatever its name."""
    return len(classes) >= 2 and any(
        _integer(name) not in (None, k) for k, name in enumerate(classes)
    )
