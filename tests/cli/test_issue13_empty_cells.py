"""Issue 13: a missing value in a table is named as missing, not as a NaN the file does not
hold; each test fails on main at f845b61.

pyarrow reads an empty CSV cell, a null marker (``NA``, ``NULL``, ``N/A``, ...) and, by
default, the text ``nan`` alike, as null; converted to NumPy a null is a NaN, so main said
"contains NaN at index (1, 1)" for a cell the user left empty.  Now a null in a class
column (CSV, Parquet, Arrow) is "the 'b' column is empty in row 1 (an empty cell or a null
marker such as NA)", as in the label column, and the text ``nan``/``NaN``/``-nan`` is the
number NaN again, reported as before.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crossent.cli import main

pa = pytest.importorskip("pyarrow")
pytest.importorskip("rich")

_EMPTY = "the 'b' column is empty in row 1 (an empty cell or a null marker such as NA)"
_NAN = "contain NaN in row 1, column 'b'"  # "the predictions (probs) contain ..."


def _refused(capsys: pytest.CaptureFixture[str], path: Path) -> str:
    code = main(["report", str(path), "--resamples", "5"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, ""), err
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("cell", ["", "NA", "NULL", "N/A", "null", "#N/A", "n/a"])
def test_issue13_empty_csv_cell_is_named_empty(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cell: str
) -> None:
    path = tmp_path / "p.csv"
    path.write_text(f"label,a,b\n0,0.5,0.5\n1,0.5,{cell}\n0,0.5,0.5\n")
    err = _refused(capsys, path)
    assert _EMPTY in err
    assert "NaN" not in err


@pytest.mark.parametrize("cell", ["nan", "NaN", "-nan", "-NaN"])
def test_issue13_literal_nan_in_csv_is_still_nan(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cell: str
) -> None:
    path = tmp_path / "p.csv"
    path.write_text(f"label,a,b\n0,0.5,0.5\n1,0.5,{cell}\n0,0.5,0.5\n")
    err = _refused(capsys, path)
    assert _NAN in err
    assert "empty" not in err


def test_issue13_empty_cell_row_counts_across_batches(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row is the row in the whole file, not in pyarrow's batch."""
    from crossent.cli import _tables

    monkeypatch.setattr(_tables, "_CSV_BLOCK_BYTES", 64)
    rows = ["label,a,b"] + ["0,0.25,0.75"] * 40 + ["1,0.5,"] + ["0,0.25,0.75"] * 5
    path = tmp_path / "p.csv"
    path.write_text("\n".join(rows) + "\n")
    err = _refused(capsys, path)
    assert "the 'b' column is empty in row 40 (" in err


def _table_with_null() -> object:
    return pa.table(
        {
            "label": pa.array([0, 1, 0], pa.int64()),
            "a": pa.array([0.5, 0.5, 0.5], pa.float64()),
            "b": pa.array([0.5, None, 0.5], pa.float64()),
        }
    )


@pytest.mark.parametrize(
    ("suffix", "module", "writer"),
    [("parquet", "pyarrow.parquet", "write_table"), ("arrow", "pyarrow.feather", "write_feather")],
)
def test_issue13_parquet_and_arrow_nulls_are_named_empty(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, suffix: str, module: str, writer: str
) -> None:
    path = tmp_path / f"p.{suffix}"
    getattr(pytest.importorskip(module), writer)(_table_with_null(), path)
    assert _EMPTY in _refused(capsys, path)


def test_issue13_integer_class_column_with_null_is_named_empty(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An integer column with a null: pyarrow gives NumPy floats with NaN."""
    path = tmp_path / "p.csv"
    path.write_text("label,a,b\n0,3,1\n1,2,\n0,1,1\n")
    code = main(["report", str(path), "--logits", "--resamples", "5"])
    _out, err = capsys.readouterr()
    assert code == 2, err
    assert _EMPTY in err


def test_issue13_complete_csv_still_reads(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "p.csv"
    path.write_text("label,a,b\n0,0.75,0.25\n1,0.5,0.5\n0,1,0\n")
    code = main(["report", str(path), "--json", "--resamples", "5"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    assert '"n": 3' in out
