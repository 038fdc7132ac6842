"""How ``--class-columns`` is split into names (mutation pass 7, ``cli._columns._names``).

As a CSV header's cells: a quoted name may follow a comma and a space, spaces around a
name are not part of it, and a line break outside quotes (which the CSV reader refuses)
stays in its name as before. Guards the mutants ``skipinitialspace`` dropped (``c,
"a,b"`` read as ``c``, ``"a`` and ``b"``), ``strip`` dropped and the ``csv.Error``
fallback emptied (each seen surviving ``test_issue13_hostile_eighth_pass.py``).
"""

from __future__ import annotations

import pytest

from crossent.cli._columns import TableColumns


@pytest.mark.parametrize(
    ("typed", "names"),
    [
        ('c, "a,b"', ("c", "a,b")),
        ('"a,b", c', ("a,b", "c")),
        ("a ,b ", ("a", "b")),
        ("a\nb,c", ("a\nb", "c")),
    ],
    ids=["quoted-second", "quoted-first", "spaces", "line-break"],
)
def test_class_columns_split_as_a_csv_header(typed: str, names: tuple[str, ...]) -> None:
    assert TableColumns.parse(None, None, typed).classes == names
