"""Which columns of a table are the label, the row ids and the classes (issue 14).

``--label-column`` (default ``label``), ``--id-column`` (not a class: its values name rows)
and ``--class-columns A,B,...`` (default: every other column); ``--integer-labels
names|positions`` says how integer labels meet class columns named by integers
(:func:`ambiguous_integer_labels`).  Every class column must be numeric; a non-numeric
one is an error naming it, with the fix.  The choice is recorded
(:meth:`TableColumns.record`) so the report always states which columns it used.

A pandas index written with the table is never a default class: ``DataFrame.to_csv``
writes it as the first column with an empty name, and ``to_parquet`` stores a non-range
index as a column named in the file's pandas metadata (``__index_level_0__``); a CSV read
back by ``read_csv`` and saved with ``index=False`` has it as a first column named
``Unnamed: 0`` (taken as the index only if it holds the row numbers 0, 1, 2, ..., which
the table reader checks).  Read as a class, it would add a class whose logit is the row
number.  It identifies the rows, so it is the id column unless ``--id-column`` names
another (then it is ignored).  Any other column is the user's to name: a default class
column of integers, a different one in every row (a *named* index written by ``to_csv``,
``df.index.name = "id"``), is refused by the table reader with the fix (``--id-column``
or ``--class-columns``), never read as a class or dropped on a guess.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._class_columns import ambiguous_integer_labels, integer_names
from .._hints import reads_as_number

__all__ = [
    "ColumnChoice",
    "TableColumns",
    "ambiguous_integer_labels",
    "choose_columns",
    "integer_names",
    "missing_label_hint",
    "separator_hint",
]


@dataclass(frozen=True)
class TableColumns:
    """The command line's column options."""

    label: str = "label"
    id: str | None = None
    classes: tuple[str, ...] | None = None
    integer_labels: str | None = None
    """``--integer-labels``: ``"names"`` (an integer label is the name of a class column),
    ``"positions"`` (its position among the class columns) or None (see
    :func:`ambiguous_integer_labels`)."""

    @classmethod
    def parse(
        cls,
        label: str | None,
        id: str | None,
        classes: str | None,
        integer_labels: str | None = None,
    ) -> TableColumns:
        """The options as typed; an empty name (``--class-columns c0,,c1``: it was
        skipped, so the classes were other than typed), or a class column named twice (one
        column read as two classes), is a :class:`ValueError` naming the option."""
        for option, name in (("--label-column", label), ("--id-column", id)):
            if name is not None and not name.strip():
                raise ValueError(f"{option} needs a column name; got {name!r}")
        chosen = None
        if classes is not None:
            chosen = _names(classes)
            if not any(chosen):
                raise ValueError("--class-columns needs at least one column name")
            empty = chosen.index("") if "" in chosen else None
            if empty is not None:
                raise ValueError(
                    f"--class-columns: name {empty + 1} of {len(chosen)} is empty in "
                    f"{classes!r}; separate the class columns' names by single commas"
                )
            twice = next((name for k, name in enumerate(chosen) if name in chosen[:k]), None)
            if twice is not None:
                raise ValueError(f"--class-columns names {twice!r} twice")
        return cls(label or "label", id, chosen, integer_labels)


def _names(classes: str) -> tuple[str, ...]:
    """The names of ``--class-columns``, separated by commas as a CSV header's are: a name
    that holds a comma is written in double quotes (``'"a,b",c'``), as the header holds
    it; split at every comma, the column ``a,b`` could not be named at all.  A double
    quote that opens a name and does not close it (``'"a'``, ``'"a,b'``) is a
    :class:`ValueError`: read leniently, ``"a`` was the column ``a`` and ``"a,b`` the one
    column ``a,b``, names other than typed."""
    try:
        cells = next(csv.reader([classes], skipinitialspace=True, strict=True), [])
    except csv.Error as exc:
        if "\n" not in classes and "\r" not in classes:
            raise ValueError(
                f"--class-columns: the double quotes of {classes!r} do not enclose whole "
                f"names ({exc}); a name that holds a comma is written in double "
                """quotes, as in the CSV header: '"a,b",c'"""
            ) from exc
        cells = classes.split(",")  # a line break outside quotes: a name's own, as before
    return tuple(name.strip() for name in cells)


@dataclass(frozen=True)
class ColumnChoice:
    """The columns a table was read with."""

    label: str
    id: str | None
    classes: list[str]
    ignored: list[str]
    listed: str | None = None
    """The class column holding a list of the :math:`K` class values in each row, when it
    is the only one; ``classes`` then names the positions, ``name[0]`` .. ``name[K-1]``."""

    def record(self) -> dict[str, Any]:
        """The JSON ``columns`` object of the report (``list``: the list column, if any)."""
        record: dict[str, Any] = {
            "label": self.label,
            "id": self.id,
            "classes": list(self.classes),
            "ignored": list(self.ignored),
        }
        if self.listed is not None:
            record["list"] = self.listed
        return record


def missing_label_hint(label: str, names: list[str]) -> str:
    """What to do about a table without the ``label`` column: a header of numbers only is
    a first row of data (``np.savetxt`` writes no header), else ``--label-column`` names
    the labels' column when the default ``label`` was looked for."""
    if names and all(reads_as_number(name) for name in names):
        header = "label" if len(names) == 1 else "c0,c1,label"
        return (
            "; the first line holds numbers, not column names: write a header row "
            f"(pandas' to_csv writes one; np.savetxt(..., header='{header}', comments=''))"
        )
    if len(names) == 1:
        hint = separator_hint(names[0])
        if hint:
            return hint
    return "; name it with --label-column" if label == "label" else ""


def separator_hint(header: str) -> str:
    """What to do about a CSV whose one-column header (or first row) ``header`` holds a
    semicolon or a tab: the file is separated by it (a semicolon with decimal commas,
    ``0,7;0,3``, is how a European locale writes CSV), "" otherwise.  Such a file was
    "no 'label' column (columns: a;b;label); name it with --label-column", or with
    decimal commas a parse error ("Expected 1 columns, got 3: 0,7;0,3;0")."""
    for separator, word in ((";", "semicolons"), ("\t", "tabs")):
        if separator in header:
            return (
                f"; it looks separated by {word}, and crossent reads comma-separated CSV "
                "with decimal points: convert it first, e.g. pandas.read_csv(FILE, "
                f"sep={separator!r}, decimal=',').to_csv('preds.csv', index=False) "
                "(decimal=',' where its numbers are written 0,7)"
            )
    return ""


def choose_columns(
    names: list[str],
    numeric: dict[str, bool],
    options: TableColumns,
    where: str,
    index: tuple[str, ...] = (),
    text_cell: Callable[[str], str] = lambda name: "",
    not_read: Callable[[str], str] = lambda name: "",
) -> tuple[ColumnChoice | None, str | None]:
    """The column choice for a table with these column ``names`` (``numeric[name]`` says
    whether the column holds numbers), or ``(None, message)`` naming the problem.

    ``index`` names the columns that hold a pandas index (from the file's pandas
    metadata); a first column with an empty name (pandas' unnamed index in a CSV) is one
    too.  An unnamed column elsewhere (``label,,b``: a header cell lost) is refused as a
    default class; it was taken as the id column, so that ``b`` alone was read as
    P(label = 1), or with ``--logits`` as the log-odds of class 1.
    They are not default classes; one of them is the id column when ``--id-column``
    is not given.  ``text_cell(name)`` says where a column that is not numeric holds
    text (" (row 1 holds '-1.#INF')"), for the refusal of such a class column;
    ``not_read(name)``, when not "", is the whole refusal of a class column of numbers
    in a type not read (a list in each row, decimals): what it holds and what to do."""
    if options.label not in names:
        return None, (
            f"{where}: no {options.label!r} column (columns: {', '.join(names) or 'none'})"
            f"{missing_label_hint(options.label, names)}"
        )
    if options.id is not None and options.id not in names:
        return None, f"{where}: no {options.id!r} column for --id-column"
    if options.id is not None and options.id == options.label:
        return None, f"{where}: --id-column and --label-column name the same column"
    unnamed_first = bool(names) and names[0] == ""  # where to_csv writes its index
    pandas_index = [
        n
        for n in names
        if (n in index or (n == "" and unnamed_first)) and n not in (options.label, options.id)
    ]
    chosen_id = options.id
    if chosen_id is None and len(pandas_index) == 1 and options.classes is None:
        chosen_id = pandas_index[0]
    others = [n for n in names if n not in (options.label, chosen_id)]
    present = set(names)  # sets: a table of 20 000 columns made these lists quadratic
    if options.classes is not None:
        missing = [c for c in options.classes if c not in present]
        if missing:
            return None, (
                f"{where}: --class-columns names {', '.join(map(repr, missing))}, not in the "
                f"table (columns: {', '.join(names)})"
            )
        taken = [c for c in options.classes if c in (options.label, options.id)]
        if taken:
            return None, f"{where}: --class-columns includes the label or id column {taken[0]!r}"
        classes = list(options.classes)
    else:
        classes = [n for n in others if n not in pandas_index]
    if not classes:
        return None, f"{where}: no class columns besides {options.label!r}"
    if "" in classes:  # a class without a name: a header cell lost, never an index
        return None, (
            f"{where}: column {names.index('') + 1} has no name in the header; name it, or "
            "list the class columns with --class-columns"
        )
    for name in classes:
        if not numeric[name] and not_read(name):
            return None, f"{where}: column {name!r} {not_read(name)}"
        if not numeric[name]:
            return None, (
                f"{where}: column {name!r} must be numeric to be a class"
                f"{text_cell(name)}; name it with "
                "--id-column if it identifies rows, or list the class columns with "
                "--class-columns"
            )
    chosen = set(classes)
    ignored = [n for n in others if n not in chosen]
    return ColumnChoice(options.label, chosen_id, classes, ignored), None
