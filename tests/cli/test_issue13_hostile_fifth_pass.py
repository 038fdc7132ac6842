"""Issue 13, a fifth hostile pass over the command line (branch clileft3).

* Subnormal numbers typed on the command line (``explain --p 1e-310``, ``--max-ece
  4e-320``) are kept as their nearest float64, as a CSV's cells are (a CSV cell
  ``1e-310`` is read as that float64; ``1e-400``, which float64 cannot hold, is refused
  in both); the help of ``explain`` and of ``--max-ece`` now says so (it said nothing).
* ``explain --logits 1,2 --label 0 --temperature 1e-320``: (p - y) / T overflows; NumPy's
  overflow warnings were printed on standard error and the gradient "sums to +nan".
* The HTML report printed a null row id as ``None``; the JSON report has ``null`` and
  the terminal prints ``null``.
* ``--output`` that cannot be written (a read-only folder, a failed rename), tested
  without root-dependent permissions: one line, exit 2, no file left, input untouched.
* A CSV of many class columns (read batch by batch, converted whole): the values, the
  first column that ``--dtype float32`` cannot hold, and a null, are those of the
  column-by-column conversion.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import mpmath
import numpy as np
import pytest

from crossent.cli import _tables as tables
from crossent.cli import main

pytest.importorskip("rich")
pytest.importorskip("pyarrow")

_FAST = ["--resamples", "5", "--top", "3"]


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert "internal error" not in err
    return err


# --- subnormal numbers: kept, as a CSV's cells are, and documented -----------------------


def _nats(x: float) -> float:
    """-log(x) of the float64 x, exactly rounded (mpmath at 60 digits)."""
    with mpmath.workdps(60):
        return float(-mpmath.log(mpmath.mpf(x)))


@pytest.mark.parametrize("text", ["1e-310", "4e-320", "5e-324"])
def test_a_subnormal_probability_is_its_nearest_float64(
    capsys: pytest.CaptureFixture[str], text: str
) -> None:
    """The loss is -log of the float64 nearest to what was typed (mpmath), as for a CSV."""
    assert main(["explain", "--binary", "--y", "1", "--p", text]) == 0
    out = capsys.readouterr().out
    assert f"loss                = {_nats(float(text)):.6f} nats" in out


def test_a_subnormal_csv_cell_is_read_as_the_command_line_reads_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "s.csv"
    path.write_text("label,a,b\n0,1e-310,1\n1,0.5,0.5\n")
    assert main(["report", str(path), "--json", *_FAST]) == 0
    nll = json.loads(capsys.readouterr().out)["nll_nats"]
    assert nll == pytest.approx((_nats(1e-310) + math.log(2)) / 2, rel=1e-14)


def test_a_subnormal_gate_threshold_is_kept(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "t.csv"
    path.write_text("label,a,b\n0,0.9,0.1\n1,0.6,0.4\n0,0.7,0.3\n")
    code = main(["report", str(path), "--max-ece", "4e-320", "--json", *_FAST])
    out, err = capsys.readouterr()
    assert code == 1, err
    assert json.loads(out)["gates"][0]["threshold"] == float("4e-320")
    assert err.endswith("> --max-ece 4e-320\n")


@pytest.mark.parametrize(
    ("argv", "flag"), [(["explain", "--help"], None), (["report", "--help"], "--max-ece")]
)
def test_help_says_subnormals_are_kept(
    capsys: pytest.CaptureFixture[str], argv: list[str], flag: str | None
) -> None:
    """Main: nothing said how 1e-310 is read (kept) beside 1e-400 (refused)."""
    assert main(argv) == 0
    text = " ".join(capsys.readouterr().out.split())
    if flag is not None:
        text = text[text.index(f"{flag} X") :]
    assert "subnormal" in text
    assert "1e-400" in text


def test_explain_tiny_temperature_gradient_warns_nothing_and_sums_no_nan(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Main: NumPy's "overflow encountered in divide" and "invalid value" warnings on
    standard error, and "it sums to +nan over classes". (In the test process, every
    warning recorded: a process with ``PYTHONWARNINGS=default`` cost 2.6 s of CPU.)"""
    argv = ["explain", "--logits", "1,2", "--label", "0", "--temperature", "1e-320"]
    for extra in ([], ["--bits", "--smoothing", "0.1"]):
        capsys.readouterr()
        with (
            warnings.catch_warnings(record=True) as caught,
            np.errstate(divide="warn", over="warn", invalid="warn", under="ignore"),
        ):
            warnings.simplefilter("always")
            code = main([*argv, *extra])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert (err, [str(w.message) for w in caught]) == ("", [])
        out = " ".join(out.split())  # explain wraps its lines to 80 columns
        assert "nan" not in out
        assert "beyond float64's range at this T" in out
        assert "sums to -inf" not in out


def test_explain_gradient_sum_unchanged_for_an_ordinary_temperature(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A guard: the sum of the gradient entries, as before."""
    assert main(["explain", "--logits", "1,2,3", "--label", "0", "--temperature", "0.3"]) == 0
    z = np.array([1.0, 2.0, 3.0]) / 0.3
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    assert f"it sums to {float(np.sum((p - [1, 0, 0]) / 0.3)):+.1e}" in capsys.readouterr().out


# --- the HTML report's null id -------------------------------------------------------------


def test_html_shows_a_null_id_as_the_json_and_terminal_do(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Main: ``<td>None</td>`` in the HTML report, ``null`` in JSON and on the terminal."""
    pytest.importorskip("matplotlib")
    path = tmp_path / "i.csv"
    path.write_text("id,label,a,b\n,0,0.1,0.9\nnan,1,0.2,0.8\n3,0,0.6,0.4\n")
    html = tmp_path / "r.html"
    argv = ["report", str(path), "--id-column", "id", *_FAST]
    assert main([*argv, "--json"]) == 0
    ids = {r["index"]: r["id"] for r in json.loads(capsys.readouterr().out)["most_surprising"]}
    assert ids == {0: None, 1: "nan", 2: 3.0}
    assert main(argv) == 0
    assert "│ null │" in capsys.readouterr().out
    assert main([*argv, "--output", str(html)]) == 0
    page = html.read_text()
    assert "<td>null</td>" in page
    assert "<td>nan</td>" in page
    assert "None" not in page


# --- an --output that cannot be written, without relying on permissions --------------------


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "p.csv"
    path.parent.mkdir()
    path.write_text("label,a,b\n0,0.9,0.1\n1,0.6,0.4\n0,0.7,0.3\n")
    return path


def _denied(*args: object, **kwargs: object) -> None:
    raise PermissionError(13, "Permission denied")


@pytest.mark.parametrize("existing", [False, True])
@pytest.mark.parametrize("where", ["replace", "create"])
def test_output_that_cannot_be_written_leaves_nothing(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    table: Path,
    where: str,
    existing: bool,
) -> None:
    """A read-only folder (creating the temporary file fails) or a failed rename: one
    line naming --output, exit 2, no partial or temporary file, the input and an earlier
    output untouched.  Checked against a mutant that keeps the temporary file."""
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "r.html"
    if existing:
        target.write_text("earlier report")
    before = table.read_bytes()
    import crossent._files as files

    if where == "replace":
        monkeypatch.setattr(files.os, "replace", _denied)
    else:
        real_open = os.open

        def refuse_in_folder(name: object, *args: object, **kwargs: object) -> int:
            if Path(str(name)).parent == folder:
                _denied()
            return real_open(name, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(files.os, "open", refuse_in_folder)
    err = _one_line_error(capsys, ["report", str(table), "--output", str(target), *_FAST])
    assert err == f"crossent: error: {target}: cannot write (Permission denied)\n"
    assert sorted(p.name for p in folder.iterdir()) == (["r.html"] if existing else [])
    if existing:
        assert target.read_text() == "earlier report"
    assert table.read_bytes() == before
    assert sorted(p.name for p in table.parent.iterdir()) == ["p.csv"]


def test_output_under_a_regular_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, table: Path
) -> None:
    """A path whose parent is a regular file: refused before any work, input untouched."""
    before = table.read_bytes()
    target = table / "r.html"
    err = _one_line_error(capsys, ["report", str(table), "--output", str(target), *_FAST])
    assert err == f"crossent: error: {target}: {table} is not a folder\n"
    assert table.read_bytes() == before
    assert sorted(p.name for p in table.parent.iterdir()) == ["p.csv"]


# --- a CSV of many class columns, converted whole ------------------------------------------


def _wide(path: Path, cells: list[list[str]], classes: int) -> None:
    header = "label," + ",".join(f"c{k}" for k in range(classes))
    path.write_text(header + "\n" + "".join("0," + ",".join(row) + "\n" for row in cells))


def test_wide_csv_values_are_read_exactly(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tables, "_CSV_BLOCK_BYTES", 1 << 15)  # several batches
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(300), size=40)
    path = tmp_path / "w.csv"
    _wide(path, [[repr(float(v)) for v in row] for row in probs], 300)
    dataset = tables.open_csv(path, None)
    try:
        assert dataset.values.dtype == np.float64
        np.testing.assert_array_equal(np.asarray(dataset.values), probs)
    finally:
        dataset.close()


@pytest.mark.parametrize(
    ("batches", "first"),
    [
        (1 << 12, "'c150' column holds 1e-50 in row 17"),
        (1 << 24, "'c40' column holds 1e+39 in row 25"),
    ],
)
def test_wide_csv_first_value_float32_cannot_hold_is_named(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    batches: int,
    first: str,
) -> None:
    """The first batch holding one, and in it the first column (as column by column)."""
    monkeypatch.setattr(tables, "_CSV_BLOCK_BYTES", batches)
    cells = [["0.005"] * 200 for _ in range(30)]
    cells[17][150] = "1e-50"  # read as 0 by float32
    cells[17][160] = "1e39"  # read as infinity: a later column, the same row
    cells[25][40] = "1e39"  # an earlier column, a later row: the first column wins
    path = tmp_path / "w.csv"
    _wide(path, cells, 200)
    err = _one_line_error(capsys, ["report", str(path), "--dtype", "float32", *_FAST])
    assert f"the {first}, which float32 cannot hold" in err


def test_wide_csv_null_is_named_with_its_row(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cells = [["0.005"] * 200 for _ in range(30)]
    cells[9][120] = ""
    path = tmp_path / "w.csv"
    _wide(path, cells, 200)
    err = _one_line_error(capsys, ["report", str(path), *_FAST])
    assert "the 'c120' column is empty in row 9" in err


def test_wide_csv_mixed_integer_and_float_columns(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Columns of two types (integers 0/1 and floats) are converted column by column."""
    path = tmp_path / "m.csv"
    path.write_text("label,a,b,c\n0,1,0.0,0\n1,0,1.0,0\n2,0,0.5,1\n")
    dataset = tables.open_csv(path, None)
    try:
        np.testing.assert_array_equal(
            np.asarray(dataset.values), [[1, 0, 0], [0, 1, 0], [0, 0.5, 1]]
        )
    finally:
        dataset.close()


# --- compressed input ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["p.csv.gz", "p.csv"])
def test_gzip_input_is_refused_with_the_way_to_read_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    """Main: "unknown format '.gz'", and for gzip bytes in a .csv "cannot be parsed (CSV
    parse error: Expected 1 columns, got 3 ...)"."""
    import gzip

    path = tmp_path / name
    path.write_bytes(gzip.compress(b"label,a,b\n0,0.9,0.1\n1,0.6,0.4\n"))
    err = _one_line_error(capsys, ["report", str(path), *_FAST])
    assert err == (
        f"crossent: error: {path}: is gzip-compressed, which is not read; decompress it, "
        f"or pipe it as a CSV: gunzip -c {path} | crossent report - ...\n"
    )


# --- models compared: the same classes in another order ------------------------------------


def test_models_with_the_classes_in_another_order_are_not_paired(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Main: the same model written with its columns in another order (the labels, class
    positions, taken from the data set) was compared with exit 0 and two different NLLs
    for one model: class 0 of one was class 2 of the other."""
    probs = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]
    labels = [0, 1, 2, 1]
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text(
        "label,x,y,z\n"
        + "".join(f"{y},{a},{b},{c}\n" for y, (a, b, c) in zip(labels, probs, strict=True))
    )
    second.write_text(
        "label,z,y,x\n"
        + "".join(f"{y},{c},{b},{a}\n" for y, (a, b, c) in zip(labels, probs, strict=True))
    )
    err = _one_line_error(capsys, ["report", str(first), str(second), *_FAST])
    assert f"model '{second}' names the same classes as '{first}' in another order" in err
    assert "(z, y, x against x, y, z)" in err
    other = tmp_path / "c.csv"  # other names: refused since branch cliout (was exit 0)
    other.write_text(second.read_text().replace("label,z,y,x", "label,p,q,r"))
    err = _one_line_error(capsys, ["report", str(first), str(other), *_FAST])
    assert "names other classes than" in err
