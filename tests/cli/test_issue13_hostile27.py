"""Issue 13, hostile pass 27: what hostile26 left open (``docs/changelog.md``).

On main (06736064):

* float labels in an ``.npy``/``.npz`` (``--labels`` or the file's ``labels``) were refused
  by their dtype alone ("got dtype float64: save them as integers ..."), naming neither
  a row nor a value: ``[0., 1.5, 2.]`` and ``[0., nan, 2.]`` read as ``[0., 1., 2.]``;
* a semicolon-separated CSV was "no 'label' column (columns: a;b;label); name it with
  --label-column", and with decimal commas (``0,7;0,3;0``) a bare parse error;
* ``--labels labels.npy.gz`` said "got '.gz'" where a compressed predictions file gets
  the command that decompresses it;
* ``TemperatureScaling().fit(probs, labels)`` without ``form`` read the probabilities as
  logits and fitted without a word (``tests/calibration/test_issue13_unnamed_form.py``).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from crossent.cli import main

_FLOATS = (
    "must be integers (class ids) or booleans; got dtype float64 (row {row} is {value}): "
    "save them as integers, labels.astype(int) after checking they are whole numbers "
    "(float labels are refused, whole ones such as 2.0 too, as crossent.report refuses "
    "them)\n"
)


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    return err


@pytest.mark.parametrize(
    ("labels", "row", "value"),
    [([0.0, 1.0, 2.0], 0, "0.0"), ([0.0, 1.5, 2.0], 1, "1.5"), ([0.0, 2.0, np.nan], 2, "nan")],
)
def test_float_labels_of_an_array_name_the_row_and_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], labels: list[float], row: int, value: str
) -> None:
    logits = np.zeros((6, 3))
    np.save(tmp_path / "l.npy", logits)
    np.save(tmp_path / "y.npy", np.array(labels * 2))
    err = _error(
        capsys, ["report", str(tmp_path / "l.npy"), "--logits", "--labels", str(tmp_path / "y.npy")]
    )
    assert err == f"crossent: error: {tmp_path / 'y.npy'}: the labels " + _FLOATS.format(
        row=row, value=value
    )
    np.savez(tmp_path / "p.npz", logits=logits, labels=np.array(labels * 2))
    err = _error(capsys, ["report", str(tmp_path / "p.npz")])
    assert err == f"crossent: error: {tmp_path / 'p.npz'}: 'labels' " + _FLOATS.format(
        row=row, value=value
    )


_SEPARATOR = (
    "; it looks separated by semicolons, and crossent reads comma-separated CSV with "
    "decimal points: convert it first, e.g. pandas.read_csv(FILE, sep=';', decimal=',')"
    ".to_csv('preds.csv', index=False) (decimal=',' where its numbers are written 0,7)\n"
)


@pytest.mark.parametrize(
    ("rows", "said"),
    [
        (
            "0,7;0,3;0\n0,4;0,6;1\n",
            "cannot be parsed (CSV parse error: Expected 1 columns, got 3: 0,7;0,3;0)",
        ),
        ("0.7;0.3;0\n0.4;0.6;1\n", "no 'label' column (columns: a;b;label)"),
    ],
)
def test_a_semicolon_separated_csv_is_named_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: str, said: str
) -> None:
    path = tmp_path / "eu.csv"
    path.write_text("a;b;label\n" + rows)
    assert _error(capsys, ["report", str(path)]) == f"crossent: error: {path}: {said}{_SEPARATOR}"


def test_a_compressed_labels_file_gets_the_command_that_decompresses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "l.npy", np.zeros((4, 2)))
    with gzip.open(tmp_path / "y.npy.gz", "wb") as handle:
        np.save(handle, np.array([0, 1, 0, 1]))
    zipped, inner = tmp_path / "y.npy.gz", tmp_path / "y.npy"
    err = _error(capsys, ["report", str(tmp_path / "l.npy"), "--logits", "--labels", str(zipped)])
    assert err == (
        f"crossent: error: {zipped}: is gzip-compressed, which is not read; decompress it "
        f"first: gunzip -c {zipped} > {inner}, then give {inner}\n"
    )


@pytest.mark.parametrize(("nan", "row", "value"), [(True, 0, "nan"), (False, 1, "1.0")])
def test_a_parquet_float_label_column_shows_its_nan_but_not_a_null(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], nan: bool, row: int, value: str
) -> None:
    """A NaN is shown as the label that is no class id; a null is no NaN (the first
    number is shown, as on main): its row was "read as nan" with the rule of arrays."""
    pa = pytest.importorskip("pyarrow")
    parquet = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "p.parquet"
    labels = pa.array([np.nan if nan else None, 1.0, 0.0, 1.0])
    parquet.write_table(pa.table({"a": [0.5] * 4, "b": [0.5] * 4, "label": labels}), path)
    assert _error(capsys, ["report", str(path)]) == (
        f"crossent: error: {path}: the 'label' column must hold integers (class ids), "
        f"booleans, or the names of the class columns; it holds floating-point numbers (row "
        f"{row} is read as {value}); write the class ids as integers (1, not 1.0)\n"
    )


@pytest.mark.parametrize(("cells", "row"), [(["1.0", ""], 0), (["NA", "1.0"], 1)])
def test_a_csv_float_label_beside_an_empty_cell_is_a_float(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cells: list[str], row: int
) -> None:
    """The column read again as text kept its empty cell as text, which no number is: it
    was "holds strings, read as the names of the class columns; row 0 has '1.0', which
    names none" (or row 0's '')."""
    path = tmp_path / "p.csv"
    path.write_text(f"a,b,label\n0.5,0.5,{cells[0]}\n0.5,0.5,{cells[1]}\n")
    assert _error(capsys, ["report", str(path)]) == (
        f"crossent: error: {path}: the 'label' column must hold integers (class ids), "
        f"booleans, or the names of the class columns; it holds floating-point numbers (row "
        f"{row} is read as 1.0); write the class ids as integers (1, not 1.0)\n"
    )
