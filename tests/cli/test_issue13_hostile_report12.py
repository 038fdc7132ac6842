"""Issue 13, a hostile pass over ``crossent report`` (branch report12).

* ``--output r.json`` wrote the HTML page into ``r.json`` and printed "HTML report
  written to r.json".  The file's format now follows its extension: ``.json`` the
  ``--json`` object, ``.md``/``.markdown`` the ``--markdown`` summary, any other name
  the HTML page (as before, so ``--output /dev/stdout`` and ``report.html`` are
  unchanged); ``--json``/``--markdown`` still choose standard output.
* An ``.npz`` (``.safetensors``, ``.pt`` dict) with arrays besides the predictions and
  labels: the report never said they were not used.  Now ``columns`` (JSON) names them
  as ``ignored``, as a table's, and the text, Markdown and HTML reports say "not used:
  'ids', 'weights'" (a table's unused columns too, said in the JSON only on main).
* A Parquet class column of lists (a Hugging Face column of probabilities) or of
  decimals was refused as "must be numeric to be a class; name it with --id-column";
  the message now names what it holds and how to write it as classes.
* (branch listcol13) A Parquet or Arrow column holding a list of numbers in each row
  (``list<double>``, ``fixed_size_list<float, K>``) is read as the classes 0..K-1 when
  it is the only class column; main refused it ("list columns are not read").  A
  ragged row, a null list or a null value is refused with its row; beside another
  class column, or with string labels, the table is refused naming why.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crossent.cli import main

pytest.importorskip("rich")

_FAST = ["--resamples", "5", "--top", "3"]
_PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.5, 0.25, 0.25]])
_LABELS = np.array([0, 1, 1, 2])


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "m.npz"
    np.savez(path, probs=_PROBS, labels=_LABELS)
    return path


@pytest.mark.parametrize(
    ("name", "flags", "shown"),
    [
        ("r.json", [], "JSON"),
        ("r.JSON", ["--markdown"], "JSON"),
        ("r.md", [], "Markdown"),
        ("r.markdown", ["--json"], "Markdown"),
        ("r.txt", [], "Text"),  # (branch report13; main: the HTML page, as for r.json)
        ("r.TXT", ["--json"], "Text"),
    ],
)
def test_output_format_follows_the_extension(
    capsys: pytest.CaptureFixture[str], model: Path, name: str, flags: list[str], shown: str
) -> None:
    """Main: the HTML page in each file, "HTML report written to r.json"."""
    output = model.parent / name
    assert main(["report", str(model), "--output", str(output), *flags, *_FAST]) == 0
    out = capsys.readouterr().out
    text = output.read_text(encoding="utf-8")
    assert "<html" not in text
    if shown == "JSON":
        payload = json.loads(text)
        assert payload["n"] == 4
        assert payload["accuracy"] == 0.5  # rows 0 and 1 right, 2 and 3 wrong
    elif shown == "Text":  # what the terminal shows, 80 columns, no style codes
        assert text.startswith(f"{model} (probs)\n")
        assert "4 examples, 3 classes" in text
        assert "\x1b" not in text
        table = [line for line in text.splitlines() if line[:1] in "┌│└┏┃┡"]
        assert table
        assert max(map(len, table)) <= 80  # (prose lines are not wrapped)
        assert any("│ accuracy " in line and "0.5000 │" in line for line in text.splitlines())
    else:
        assert text.startswith("### crossent report:")
        assert "| accuracy | 0.5000 |" in text
    if not flags:
        assert f"{shown} report written to {output}" in out.replace("\n", "")
    elif flags == ["--json"]:
        assert json.loads(out)["n"] == 4  # standard output: still --json's object
    else:
        assert out.startswith("### crossent report:")


@pytest.mark.parametrize("name", ["c.md", "c.txt"])
def test_markdown_output_of_a_comparison(tmp_path: Path, model: Path, name: str) -> None:
    """Two models: ``--output c.md`` holds the comparison's Markdown, ``c.txt`` the text
    the terminal shows (main: HTML, both)."""
    other = tmp_path / "o.npz"
    np.savez(other, probs=_PROBS[:, [1, 0, 2]], labels=_LABELS)
    output = tmp_path / name
    assert main(["report", str(model), str(other), "--output", str(output), *_FAST]) == 0
    text = output.read_text(encoding="utf-8")
    assert "<html" not in text
    if name == "c.md":
        assert text.startswith("### crossent report: 2 models")
    else:
        assert text.lstrip().startswith("2 models on the same examples")
        assert "paired differences against" in text


# --- the arrays a report did not use ----------------------------------------------------


@pytest.mark.parametrize("flag", ["text", "--json", "--markdown"])
def test_npz_arrays_not_used_are_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flag: str
) -> None:
    """``np.savez(probs=, labels=, ids=, weights=)``: main's report never said that
    ``ids`` and ``weights`` were not used (its JSON ``columns`` was null)."""
    path = tmp_path / "x.npz"
    np.savez(path, probs=_PROBS, ids=np.arange(4), labels=_LABELS, weights=np.ones(4))
    argv = ["report", str(path), *_FAST] + ([] if flag == "text" else [flag])
    assert main(argv) == 0
    out = capsys.readouterr().out
    if flag == "--json":
        assert json.loads(out)["columns"] == {
            "predictions": "probs",
            "label": "labels",
            "ignored": ["ids", "weights"],
        }
    else:
        want = "predictions from 'probs', labels from 'labels'; not used: 'ids', 'weights'."
        assert want in out.replace("\n", " ").replace("  ", " ")


def test_npz_with_every_array_used_says_nothing_more(
    capsys: pytest.CaptureFixture[str], model: Path
) -> None:
    """No array left out: ``columns`` stays null, as main's (the report of an ``.npy``
    with its labels equals the ``.npz``'s), and an error keeps the array's index terms
    (mutant-guarded: recording the arrays always broke both)."""
    assert main(["report", str(model), "--json", *_FAST]) == 0
    assert json.loads(capsys.readouterr().out)["columns"] is None
    np.savez(model, probs=np.where(_PROBS == 0.8, np.nan, _PROBS), labels=_LABELS, w=_LABELS)
    assert main(["report", str(model), *_FAST]) == 2
    assert "`probs` contains NaN at index (1, 1)" in capsys.readouterr().err


def test_table_columns_not_used_are_named_in_the_text(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A CSV's columns left out by --class-columns: main's text report said only the
    columns used (the JSON's ``ignored`` listed the others)."""
    path = tmp_path / "t.csv"
    rows = [
        f"{y},{a},{b},{c},r{k},1"
        for k, (y, (a, b, c)) in enumerate(zip(_LABELS, _PROBS, strict=True))
    ]
    path.write_text("label,a,b,c,name,w\n" + "\n".join(rows) + "\n")
    assert main(["report", str(path), "--class-columns", "a,b,c", *_FAST]) == 0
    out = capsys.readouterr().out.replace("\n", " ")
    assert "3 class columns ('a', 'b', 'c'); not used: 'name', 'w'." in out


# --- class columns of numbers in a type not read -----------------------------------------


@pytest.mark.parametrize("kind", ["list", "decimal"])
def test_parquet_list_or_decimal_column_says_what_it_holds(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    """Main: "column 'p' must be numeric to be a class; name it with --id-column if it
    identifies rows ..." for a Hugging Face column of probability lists, and for
    decimals, which are numbers."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from decimal import Decimal

    labels = pa.array(_LABELS.tolist(), type=pa.int64())
    if kind == "list":  # of numbers, read as the classes (listcol13); of text, refused
        table = pa.table({"p": pa.array([["0.5", "0.5"]] * 4), "label": labels})
        want = "column 'p' holds a list in each row (list<"  # the item's name: pyarrow's
    else:
        first = pa.array([Decimal(f"{v:.2f}") for v in _PROBS[:, 0]], type=pa.decimal128(3, 2))
        table = pa.table({"p": first, "b": _PROBS[:, 1], "c": _PROBS[:, 2], "label": labels})
        want = "column 'p' holds decimals (decimal128(3, 2)), which are not read as classes"
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    assert main(["report", str(path), *_FAST]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert want in err
    assert "--id-column" not in err
    if kind == "list":
        assert "list column is read as the classes only when it holds numbers" in err


# --- a column of lists read as the classes (branch listcol13) -----------------------------


def _list_table(pa: object, values: list[object], kind: str, labels: list[object]) -> object:
    """A table of ``labels`` and the column ``probs`` of lists of type ``kind``."""
    types = {
        "list<double>": pa.list_(pa.float64()),  # type: ignore[attr-defined]
        "large_list<double>": pa.large_list(pa.float64()),  # type: ignore[attr-defined]
        "fixed_size_list<float, 3>": pa.list_(pa.float32(), 3),  # type: ignore[attr-defined]
        "list<float>": pa.list_(pa.float32()),  # type: ignore[attr-defined]
    }
    return pa.table({"label": labels, "probs": pa.array(values, type=types[kind])})  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kind", "form"),
    [
        ("list<double>", None),
        ("fixed_size_list<float, 3>", None),
        ("large_list<double>", "--logits"),
        ("list<float>", "--log-probs"),
    ],
)
def test_list_column_is_read_as_the_classes(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    kind: str,
    form: str | None,
) -> None:
    """Main: "list columns are not read" (exit 2).  The list column's report equals the
    report of the same values written one column per class (the JSON but its source and
    columns), its classes named ``probs[0]``..``probs[2]``; float32 lists stay float32.
    Batches of 3 rows; the ``large_list`` in an Arrow IPC file; a sliced array's lists
    (past its values' start) are read from their offsets."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from pyarrow import feather

    import crossent.cli._tables as tables
    from crossent.cli._tables import open_arrow, open_parquet

    monkeypatch.setattr(tables, "_BATCH_ROWS", 3)

    dtype = np.float32 if "float" in kind else np.float64
    values = _PROBS if form is None else np.log(_PROBS) + (3.0 if form == "--logits" else 0.0)
    values = values.astype(dtype)
    labels = pa.array(_LABELS.tolist(), type=pa.int64())
    arrow = kind.startswith("large")
    listed = tmp_path / ("listed.arrow" if arrow else "listed.parquet")
    columns = tmp_path / "columns.parquet"
    table = _list_table(pa, list(values), kind, labels)
    (feather.write_feather if arrow else pq.write_table)(table, listed)  # type: ignore[operator]
    sliced = table.column("probs").chunk(0).slice(1)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(tables._list_block(listed, sliced, 0, 3, "probs"), values[1:])
    per_class = {f"probs[{k}]": pa.array(values[:, k]) for k in range(3)}
    pq.write_table(pa.table({"label": labels, **per_class}), columns)
    flags = [*([form] if form else []), "--json", *_FAST]
    reports = []
    for path in (listed, columns):
        assert main(["report", str(path), *flags]) == 0
        reports.append(json.loads(capsys.readouterr().out))
    got, want = reports
    assert got.pop("columns") == {**want.pop("columns"), "list": "probs"}
    assert got.pop("source") != want.pop("source")
    assert got == want
    assert [row["name"] for row in got["per_class"]] == ["probs[0]", "probs[1]", "probs[2]"]
    read = (open_arrow if arrow else open_parquet)(listed, form and form.lstrip("-"))
    try:
        assert read.values.dtype == dtype
        np.testing.assert_array_equal(read.values, values)
    finally:
        read.close()


@pytest.mark.parametrize(
    "case",
    ["ragged", "null list", "null value", "beside a class column", "named beside", "strings"],
)
def test_list_column_refusals_name_the_row(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    case: str,
) -> None:
    """A list of another length, a null list or a null value is refused with its column
    and row (in a later batch: the row counts from the file's start); a list column
    beside another class column, and string labels (the lists' classes have no names),
    are refused naming why.  Exit 2, one message, no output file.  Main refused every one
    as "list columns are not read"."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    import crossent.cli._tables as tables

    monkeypatch.setattr(tables, "_BATCH_ROWS", 2)  # row 3 is in the second batch
    rows: list[object] = [list(row) for row in _PROBS]
    labels: list[object] = _LABELS.tolist()
    extra: dict[str, object] = {}
    flags: list[str] = []
    want = {
        "ragged": "the 'probs' column holds a list of 2 values in row 3, and the first row's "
        "holds 3",
        "null list": "the 'probs' column holds null in row 3, not a list of class values",
        "null value": "the 'probs' column's list in row 3 holds null at position 1",
        "beside a class column": "column 'probs' holds a list of class values in each row (list<",
        "named beside": "and 'b' is a class column too",
        "strings": "the 'label' column holds strings ('a', 'b'), and the classes are the "
        "positions 0..2 in the lists of column 'probs'",
    }[case]
    if case == "ragged":
        rows[3] = [0.5, 0.5]
    elif case == "null list":
        rows[3] = None
    elif case == "null value":
        rows[3] = [0.5, None, 0.5]
    elif case in ("beside a class column", "named beside"):
        extra["b"] = pa.array([0.5] * 4)
        flags = ["--class-columns", "b,probs"] if case == "named beside" else []
    else:
        labels = ["a", "b", "b", "c"]
    path, output = tmp_path / "t.parquet", tmp_path / "r.json"
    table = pa.table({"label": labels, "probs": pa.array(rows), **extra})
    pq.write_table(table, path)
    assert main(["report", str(path), "--output", str(output), *flags, *_FAST]) == 2
    err = capsys.readouterr().err
    assert want in err.replace("\n", " ")
    assert "Traceback" not in err
    assert not output.exists()


@pytest.mark.parametrize("kind", ["int32", "int16", "uint32"])
def test_integer_class_columns_are_read_as_float64(tmp_path: Path, kind: str) -> None:
    """Class columns that are all integers are read as float64, as the module says and
    as a mix with a float64 column is: main read int32 (any 4-byte or narrower) columns
    as float32, 16777217 as 16777216.0 with no word, and checked them with float32's
    tolerance."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from crossent.cli._tables import open_parquet

    big = 16777217 if kind != "int16" else 32767
    path = tmp_path / "integers.parquet"
    table = {"label": [0, 1], "a": pa.array([big, 0], kind), "b": pa.array([0, 1], kind)}
    pq.write_table(pa.table(table), path)
    read = open_parquet(path, "logits")
    try:
        assert read.values.dtype == np.float64
        np.testing.assert_array_equal(read.values, [[big, 0], [0, 1]])
    finally:
        read.close()
