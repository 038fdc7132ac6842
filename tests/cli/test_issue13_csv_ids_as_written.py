"""A CSV's --id-column gives each row's id as the file writes it (issue 13).

Main read the id column as numbers wherever pyarrow could parse them: ``007``,
``000000397133`` (a COCO image id), ``0x1F``, ``1e3``, ``1.50``, ``-0`` and ``+5`` were
reported as 7, 397133, 31, 1000.0, 1.5, 0 and 5.0, in the JSON, the terminal table and the
HTML page.  The rule now (``crossent.cli._ids``): the ids are numbers only when every cell
that is not missing is its number's text (``str(int(c)) == c`` or ``repr(float(c)) == c``);
otherwise the whole column is text, each cell as written.  The oracle is the cell text the
test wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import crossent
import crossent.cli._tables as tables
from crossent.cli import main
from crossent.cli._ids import exact_ids

pytest.importorskip("rich")
pytest.importorskip("pyarrow")

_FAST = ["--resamples", "5", "--top", "3"]
_ROWS = ["0,0.9,0.1", "1,0.2,0.8", "0,0.6,0.4"]


def _ids(
    tmp_path: Path, cells: list[str], capsys: pytest.CaptureFixture[str], terminal: bool = False
) -> Any:
    """The JSON report's ids, by row, of a CSV with these id cells; with ``terminal``,
    the terminal report."""
    path = tmp_path / "ids.csv"
    lines = [f"{cell},{row}" for cell, row in zip(cells, _ROWS, strict=True)]
    path.write_text("id,label,a,b\n" + "\n".join(lines) + "\n")
    argv = ["report", str(path), "--id-column", "id", *_FAST]
    assert main(argv if terminal else [*argv, "--json"]) == 0
    out = capsys.readouterr().out
    return (
        out if terminal else {row["index"]: row["id"] for row in json.loads(out)["most_surprising"]}
    )


@pytest.mark.parametrize("cell", ["007", "000000397133", "0x1F", "1e3", "1.50", "-0", "+5"])
def test_an_id_that_is_not_its_numbers_text_keeps_the_column_as_written(
    cell: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Main: 7, 397133, 31, 1000.0, 1.5, 0, 5.0; the other ids, plain integers, are text
    too: one column, one kind of id."""
    assert _ids(tmp_path, [cell, "8", "12"], capsys) == {0: cell, 1: "8", 2: "12"}


def test_the_terminal_table_shows_the_ids_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Main: 7, 397133 and 31 in the table of the most surprising rows."""
    table = _ids(tmp_path, ["007", "000000397133", "0x1F"], capsys, terminal=True)
    assert all(f" {cell:>12} │" in table for cell in ["007", "000000397133", "0x1F"])


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        (["8", "-12", "000"], {0: "8", 1: "-12", 2: "000"}),  # one padded cell: all text
        (["1", "2.5", "NA"], {0: 1, 1: 2.5, 2: None}),  # numbers: each its own text
    ],
    ids=["padded-zero", "int-float-null"],
)
def test_mixed_columns(
    cells: list[str],
    expected: dict[int, object],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Main: 8, -12, 0 and 1.0, 2.5, None."""
    ids = _ids(tmp_path, cells, capsys)
    assert ids == expected
    assert [type(ids[k]) for k in range(3)] == [type(expected[k]) for k in range(3)]


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        (["007", "", "NA"], ["007", "", "NA"]),  # text: no cell made a null
        (["1", "2.5", "x"], ["1", "2.5", "x"]),
        (["-0.00", "0.10", "1_000"], ["-0.00", "0.10", "1_000"]),
        ([" 8", "True", "8"], [" 8", "True", "8"]),
        (["", "nan", "3"], [None, "nan", 3]),  # numbers: a null, a NaN as its text
        (["99999999999999999999", "-0.0", "inf"], [10**20 - 1, -0.0, float("inf")]),
        (["NA", "", "NULL"], [None, None, None]),
    ],
)
def test_the_rule_cell_by_cell(cells: list[str], expected: list[object]) -> None:
    """:func:`exact_ids` itself, on the cells no report needs to be computed for."""
    import pyarrow as pa

    got = exact_ids(pa.array(cells, type=pa.string()), tables._null_markers()).tolist()
    assert got == expected
    assert list(map(type, got)) == list(map(type, expected))


@pytest.mark.parametrize(
    "cells",
    [["8", "-12", "397133"], ["0", "0.1", "-7"]],
    ids=["ints", "mixed-numbers"],
)
def test_a_column_of_numbers_texts_stays_numbers(
    cells: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Guards the numbers (a mutant reading every id column as text fails); main gave
    ``0`` and ``-7`` of the last column as 0.0 and -7.0."""
    ids = _ids(tmp_path, cells, capsys)
    numbers = [int(c) if c.lstrip("-").isdigit() else float(c) for c in cells]
    assert ids == dict(enumerate(numbers))
    assert [type(ids[k]) for k in range(3)] == list(map(type, numbers))


def test_the_rule_holds_across_batches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One padded id in a later batch makes every id text, the first batch's too."""
    monkeypatch.setattr(tables, "_CSV_BLOCK_BYTES", 1 << 10)
    path = tmp_path / "ids.csv"
    body = "".join(f"{k},0,0.5,0.5\n" for k in range(300))
    path.write_text("id,label,a,b\n" + body + "0042,1,0.999,0.001\n")
    argv = ["report", str(path), "--id-column", "id", "--json", "--resamples", "5", "--top", "2"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)["most_surprising"]
    ids = {row["index"]: row["id"] for row in rows}
    assert ids.pop(300) == "0042"
    assert [(v, type(v)) for v in ids.values()] == [(str(k), str) for k in ids]


def test_parquet_and_the_library_agree_with_the_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Text ids stay text and integer ids integers, whatever the input."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    labels = [0, 1, 0]
    for ids in (["007", "8", "12"], [7, 8, 12]):
        csv_ids = _ids(tmp_path, [str(i) for i in ids], capsys)
        table = {"id": ids, "label": labels, "a": probs[:, 0], "b": probs[:, 1]}
        pq.write_table(pa.table(table), tmp_path / "ids.parquet")
        argv = ["report", str(tmp_path / "ids.parquet"), "--id-column", "id", "--json", *_FAST]
        assert main(argv) == 0
        rows = json.loads(capsys.readouterr().out)["most_surprising"]
        assert {row["index"]: row["id"] for row in rows} == csv_ids == dict(enumerate(ids))
        library = crossent.report(probs, labels, ids=np.asarray(ids), resamples=5).to_dict()
        assert {row["index"]: row["id"] for row in library["most_surprising"]} == csv_ids


def test_the_unnamed_index_to_csv_wrote_keeps_its_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """pandas' ``to_csv`` writes a string index such as ``007`` as the unnamed first
    column, taken as the ids without --id-column (main: 7, 8, 12)."""
    path = tmp_path / "index.csv"
    path.write_text(",label,a,b\n007,0,0.9,0.1\n8,1,0.2,0.8\n12,0,0.6,0.4\n")
    assert main(["report", str(path), "--json", *_FAST]) == 0
    rows = json.loads(capsys.readouterr().out)["most_surprising"]
    assert {row["index"]: row["id"] for row in rows} == {0: "007", 1: "8", 2: "12"}
