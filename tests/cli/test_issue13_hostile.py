"""Issue 13, a second hostile pass over ``crossent report`` and ``crossent explain``: each
test pins a defect found by attacking the command line, and fails on main at 80cb110.

* Text from the user's files (a path, a CSV's column names, an ``--id-column`` value, a
  model's path in a comparison, the ``--output`` path) was read by rich as console markup:
  ``[/b]`` ended the run with exit 3 (``MarkupError``), ``[bold]`` vanished from the path
  shown, so the report named a file that does not exist;
* an argument error (``--bins abc``) printed argparse's whole usage before the one line
  that matters;
* ``--markdown`` wrapped a path in single backticks, so a path holding one broke the
  code span;
* ``--json`` with an ``--id-column`` of dates, timestamps, decimals, bytes or a NaN float:
  exit 3 (``... is not JSON serializable``, ``Out of range float values``); a list column
  exit 3 in every output (``can only convert an array of size 1``);
* ``--class-columns a,a`` read one column as two classes (with ``--logits``: a report of
  a made-up two-class model);
* ``--output -`` wrote a file named ``-``, ``--output x.html/`` a file ``x.html``, and
  ``--output ''`` was reported as the folder ``.``;
* ``--label-column``/``--id-column``/``--class-columns`` without a PATH were ignored (the
  built-in example ran, 20 s); ``report - -`` read standard input twice and called the
  second, empty read a parse error;
* a uint64 label column's 2**64 - 1 was refused as the label -1;
* an infinite logit was "`logits` (logits)" / "the predictions (logits) (logits)";
* an ``.npz`` with zero classes was refused as "`classes` must be a positive integer",
  an argument the command line does not have;
* ``explain --temperature 1e-320`` refused a valid Q as "entirely -inf" after NumPy's
  warnings, and ``explain --logits 1e308,-1e308`` printed an overflow warning.
"""

from __future__ import annotations

import datetime
import decimal
import json
from pathlib import Path

import numpy as np
import pytest

from crossent.cli import main

from .conftest import make_predictions

pytest.importorskip("rich")

_FAST = ["--resamples", "5", "--top", "3"]


def _ok(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    return out


def _usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "internal error" not in err
    return err


def _npz(path: Path, n: int = 12, classes: int = 3) -> Path:
    logits, labels = make_predictions(n=n, classes=classes)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, logits=logits, labels=labels)
    return path


def _csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


# --- text from files is never console markup ------------------------------------------


@pytest.mark.parametrize("name", ["x[/b].npz", "[bold]x.npz", "[red]y[/red].npz"])
def test_markup_in_the_path_is_shown_verbatim(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    """Main: ``[/b]`` (a folder ``x[`` and a file ``b].npz``) exit 3; ``[bold]`` and
    ``[red]...[/red]`` were dropped from the path shown."""
    path = _npz(tmp_path / name)
    out = _ok(capsys, ["report", *_FAST, str(path)])
    assert str(path) in out


def test_markup_in_class_names_and_ids_is_shown_verbatim(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("pyarrow")
    path = _csv(
        tmp_path / "markup.csv",
        "id,label,[red]cat,dog[/]",
        ["[/],0,0.75,0.25", "[bold]r1,1,0.5,0.5", "r2[/i],1,0.125,0.875"],
    )
    out = _ok(capsys, ["report", *_FAST, "--id-column", "id", str(path)])
    for text in ("[red]cat", "dog[/]", "[/]", "[bold]r1", "r2[/i]"):
        assert text in out


def test_markup_in_compared_paths_is_shown_verbatim(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # short names: the table shows them whole
    _npz(tmp_path / "a[" / "b].npz")
    _npz(tmp_path / "[i]c.npz")
    out = _ok(capsys, ["report", *_FAST, "a[/b].npz", "[i]c.npz"])
    assert "a[/b].npz" in out
    assert "[i]c.npz" in out


def test_markup_in_the_output_path_is_shown_verbatim(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Main: the HTML file was written, then exit 3 on "HTML report written to ..."."""
    pytest.importorskip("matplotlib")
    path = _npz(tmp_path / "p.npz")
    (tmp_path / "out[").mkdir()
    output = tmp_path / "out[" / "x].html"
    out = _ok(capsys, ["report", *_FAST, str(path), "--output", str(output)])
    assert f"HTML report written to {output}" in out.replace("\n", "")
    assert output.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_backticks_in_a_path_keep_the_markdown_code_span(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Main: "### crossent report: `a``b.npz`", whose code span ends after ``a``."""
    monkeypatch.chdir(tmp_path)
    _npz(tmp_path / "a``b.npz")
    _npz(tmp_path / "`c.npz")
    out = _ok(capsys, ["report", "--markdown", *_FAST, "a``b.npz"])
    assert out.splitlines()[0] == "### crossent report: ```a``b.npz```"
    out = _ok(capsys, ["report", "--markdown", *_FAST, "a``b.npz", "`c.npz", "--max-nll", "9"])
    assert "Paired differences against ```a``b.npz``` (" in out
    assert "\n`` `c.npz ``:\n" in out


# --- --id-column values of any type make a JSON report --------------------------------


def _ids_table(tmp_path: Path, ids: object) -> Path:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "id": ids,
            "label": pa.array([0, 1, 1]),
            "a": pa.array([0.75, 0.5, 0.125]),
            "b": pa.array([0.25, 0.5, 0.875]),
        }
    )
    path = tmp_path / "ids.parquet"
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            [datetime.date(2020, 1, 2), datetime.date(2021, 3, 4), datetime.date(2022, 5, 6)],
            ["2020-01-02", "2021-03-04", "2022-05-06"],
        ),
        (
            [datetime.datetime(2020, 1, 2, 3, 4, s) for s in (5, 6, 7)],  # (one id a row)
            [f"2020-01-02T03:04:0{s}.000000" for s in (5, 6, 7)],
        ),
        ([decimal.Decimal("1.5"), decimal.Decimal("2.0"), None], ["1.5", "2.0", None]),
        ([b"\xff\x00", b"a", b"b"], ["b'\\xff\\x00'", "b'a'", "b'b'"]),
        ([1.5, float("nan"), float("-inf")], [1.5, "nan", "-inf"]),  # NaN is not null
        ([[1], [2, 3], []], ["[1]", "[2, 3]", "[]"]),
        (["x", None, "z"], ["x", None, "z"]),
        ([7, 8, 2**63 + 1], [7, 8, 2**63 + 1]),
    ],
    ids=["date", "timestamp", "decimal", "bytes", "float", "list", "string", "uint64"],
)
def test_any_id_column_makes_a_json_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, values: list[object], expected: list[object]
) -> None:
    """Main: exit 3 for all but strings and integers ("not JSON serializable", "Out of
    range float values", "can only convert an array of size 1").  A value JSON cannot
    hold is given as its text (NaN as "nan"); a missing one (a null) as null."""
    import pyarrow as pa

    column = pa.array(values, type=pa.uint64()) if isinstance(values[2], int) else values
    path = _ids_table(tmp_path, column)
    out = _ok(capsys, ["report", "--json", *_FAST, "--id-column", "id", str(path)])
    payload = json.loads(out)
    got = {row["index"]: row["id"] for row in payload["most_surprising"]}
    assert got == dict(enumerate(expected))


def test_library_report_ids_are_json_values() -> None:
    """The same rule in :func:`crossent.report`, whose ``to_dict()`` is the JSON report:
    nanosecond datetimes are given as their text and NaT as null (main: the integers
    1577923200000000000 ..., nanoseconds since 1970, whose ``item()`` they are)."""
    import crossent

    probs = np.array([[0.75, 0.25], [0.5, 0.5], [0.125, 0.875]])
    ids = np.array(["2020-01-02", "NaT", "2022-05-06"], dtype="datetime64[ns]")
    result = crossent.report(probs, [0, 1, 1], ids=ids, resamples=5)
    text = json.dumps(result.to_dict(), allow_nan=False)
    got = {row["index"]: row["id"] for row in json.loads(text)["most_surprising"]}
    day = "T00:00:00.000000000"
    assert got == {0: f"2020-01-02{day}", 1: None, 2: f"2022-05-06{day}"}


# --- column options ------------------------------------------------------------------


def test_a_class_column_named_twice_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Main: ``--logits --class-columns a,a`` reported a two-class model made of one
    column (NLL log 2 for every row)."""
    pytest.importorskip("pyarrow")
    path = _csv(tmp_path / "t.csv", "label,a,b", ["0,2.0,1.0", "1,0.5,3.0"])
    err = _usage_error(
        capsys, ["report", "--json", *_FAST, "--logits", "--class-columns", "a,b,a", str(path)]
    )
    assert "--class-columns names 'a' twice" in err


@pytest.mark.parametrize(
    "option", [["--label-column", "y"], ["--id-column", "id"], ["--class-columns", "a,b"]]
)
def test_column_options_need_a_path(capsys: pytest.CaptureFixture[str], option: list[str]) -> None:
    """Main: ignored, and the built-in example ran (about 20 s)."""
    err = _usage_error(capsys, ["report", "--json", *_FAST, *option])
    assert f"{option[0]} needs a PATH" in err


@pytest.mark.parametrize("option", ["--label-column", "--id-column"])
def test_empty_column_names_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, option: str
) -> None:
    """Main: ``--label-column ''`` silently meant 'label'."""
    path = _npz(tmp_path / "p.npz")
    err = _usage_error(capsys, ["report", "--json", *_FAST, option, "", str(path)])
    assert f"{option} needs a column name" in err


def test_standard_input_twice_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Main: "-: cannot be parsed (Empty CSV file)", about a table that was read once."""
    import io
    import sys

    csv = b"label,a,b\n0,0.75,0.25\n1,0.5,0.5\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(csv)))
    err = _usage_error(capsys, ["report", "--json", *_FAST, "-", "-"])
    assert "'-' (a CSV on standard input) can be given only once" in err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["report", "--bins", "abc"], "crossent report: error: argument --bins: invalid int"),
        (["report", "--max-ece", "inf"], "argument --max-ece: a threshold must be a finite"),
        (["report", "--bogus"], "crossent: error: unrecognized arguments: --bogus"),
        # -inf,1 is a value since the 4th hostile pass; -x,1 is not
        (["explain", "--logits", "-x,1"], "argument --logits: expected one argument"),
        (["demo", "nope"], "crossent demo: error: argument TOPIC: invalid choice: 'nope'"),
        (["nope"], "crossent: error: argument COMMAND: invalid choice: 'nope'"),
    ],
)
def test_argument_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    """Main: argparse's usage first (eleven lines for ``report``), the error last."""
    err = _usage_error(capsys, argv)
    assert words in err
    assert err.rstrip().endswith("--help)")


# --- --output names ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ("-", "'-' is not a file name"),
        ("", "an empty file name"),
        ("report.html/", "ends in '/'"),
    ],
)
def test_output_names_that_are_no_file_are_refused(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    given: str,
    words: str,
) -> None:
    """Main: ``-`` wrote a file named ``-``; ``report.html/`` wrote ``report.html``;
    ``''`` was refused as "." (a directory)."""
    path = _npz(tmp_path / "p.npz")
    monkeypatch.chdir(tmp_path)
    err = _usage_error(capsys, ["report", *_FAST, str(path), "--output", given])
    assert "--output: " in err
    assert words in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.npz"]


@pytest.mark.parametrize("kind", ["npz", "csv"])
def test_infinite_logits_are_named_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    """Main: "`logits` (logits) must not be +inf" and, for a CSV, "the predictions
    (logits) (logits) must not be +inf"."""
    logits, labels = make_predictions(n=6, classes=2)
    logits[4, 1] = np.inf
    if kind == "npz":
        path, argv, name = tmp_path / "l.npz", [], "`logits`"
        np.savez(path, logits=logits, labels=labels)
        where = "at index (4, 1)"
    else:
        pytest.importorskip("pyarrow")
        rows = [f"{y},{a!r},{b!r}" for y, (a, b) in zip(labels, logits.tolist(), strict=True)]
        path, argv = _csv(tmp_path / "l.csv", "label,a,b", rows), ["--logits"]
        name = "the predictions (logits)"
        where = "in row 4, column 'b'"  # a table's terms (branch hostilecli8)
    err = _usage_error(capsys, ["report", "--json", *_FAST, *argv, str(path)])
    assert f"{path}: {name} must not be +inf; got +inf {where}" in err


@pytest.mark.parametrize("label", [2**64 - 1, 2**63 + 3])
def test_a_huge_unsigned_label_is_named_by_its_value(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, label: int
) -> None:
    """Main: a uint64 label column was cast to int64, and 2**64 - 1 refused as "row 0 has
    -1"."""
    import pyarrow as pa

    path = _ids_table(tmp_path, pa.array([1, 2, 3]))
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(path).select(["label", "a", "b"])
    table = table.set_column(0, "label", pa.array([label, 1, 1], pa.uint64()))
    pq.write_table(table, path)
    err = _usage_error(capsys, ["report", "--json", *_FAST, str(path)])
    assert f"(row 0 has {label})" in err


# --- shapes --------------------------------------------------------------------------


def test_zero_classes_name_the_array(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "empty.npz"
    np.savez(path, probs=np.zeros((5, 0)), labels=np.zeros(5, dtype=np.int64))
    err = _usage_error(capsys, ["report", "--json", *_FAST, str(path)])
    assert f"{path}: `probs` has no classes (shape (5, 0))" in err


# --- explain -------------------------------------------------------------------------


def test_explain_tiny_temperature_reshapes_q(capsys: pytest.CaptureFixture[str]) -> None:
    """Main: two RuntimeWarnings, then "`q` (logits) has the distribution entirely -inf".
    Q = (0.5, 0.5) is unchanged by any temperature; Q = (0.75, 0.25) at T -> 0 is one-hot."""
    out = _ok(capsys, ["explain", "--p", "1,0", "--q", "0.5,0.5", "--temperature", "1e-320"])
    assert "H(P, Q_T) = 0.6931" in out
    out = _ok(capsys, ["explain", "--p", "1,0", "--q", "0.75,0.25", "--temperature", "1e-300"])
    assert "H(P, Q_T) = 0.0000" in out


def test_explain_huge_logits_print_no_warning(capsys: pytest.CaptureFixture[str]) -> None:
    """Main: "RuntimeWarning: overflow encountered in subtract" on stderr."""
    out = _ok(capsys, ["explain", "--logits", "1e308,-1e308", "--label", "0"])
    assert "Traceback" not in out
