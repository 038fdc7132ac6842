"""CLI gaps left by the last hostile pass; each test fails on main at afc1e53.

* a CSV probability below float64's range (``1e-400``) was read as 0 by pyarrow: an
  infinite NLL, exit 0 (a silent wrong number);
* ``report a.csv --json b.csv``: "unrecognized arguments: b.csv" (PATHs after an option);
* option abbreviations were accepted (``--se`` for ``--seed``);
* ``explain --help`` said ``--p`` is the true ``p`` with ``--binary``, where it is the
  predicted probability;
* null and NaN ids both printed as ``None``; a trailing comma in a CSV header made an
  empty id-less column; a Parquet file mixing float32 and float64 class columns was
  checked with float64's tolerance.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import crossent.cli._tables as tables
from crossent.cli import main

pytest.importorskip("rich")
pytest.importorskip("pyarrow")

_FAST = ["--resamples", "5", "--top", "3"]
_CSV = "label,a,b\n0,0.9,0.1\n1,0.2,0.8\n0,0.6,0.4\n"


def test_paths_and_options_may_interleave(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(_CSV)
    b.write_text(_CSV)
    assert main(["report", str(a), "--json", str(b), *_FAST]) == 0
    assert [m["source"] for m in json.loads(capsys.readouterr().out)["models"]] == [
        str(a),
        str(b),
    ]
    # the "given twice" check still holds across the PATHs
    assert main(["report", str(a), "--seed", "1", str(b), "--seed", "2", *_FAST]) == 2
    assert "argument --seed: given twice (1 and then 2)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "A", "--se", "3"],
        ["report", "A", "--res", "5"],
        ["report", "A", "--jso"],
        ["explain", "--bin", "--y", "1", "--p", "0.9"],
        ["--deb", "demo"],
    ],
)
def test_option_abbreviations_are_refused(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "a.csv"
    path.write_text(_CSV)
    argv = [str(path) if word == "A" else word for word in argv]
    assert main(argv) == 2
    abbreviation = next(w for w in argv if w.startswith("--"))
    assert f"unrecognized arguments: {abbreviation}" in capsys.readouterr().err


def test_explain_help_says_binary_p_is_the_prediction(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["explain", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "binary p with --binary" not in text
    assert "with --binary, the predicted probability p of class 1" in text


@pytest.mark.parametrize(
    ("form", "cell", "other", "message"),
    [
        ([], "1e-400", "1", "the 'a' column holds '1e-400' in row 1, beyond float64's smallest"),
        ([], "  1E-999 ", "1", "holds '1E-999' in row 1, beyond float64's smallest number"),
        (["--log-probs"], "-1e400", "0", "holds '-1e400' in row 1, beyond float64's largest"),
        (["--logits"], "1e999", "0", "the 'a' column holds '1e999' in row 1, beyond"),
    ],
)
def test_a_number_float64_cannot_hold_is_refused(
    form: list[str],
    cell: str,
    other: str,
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pyarrow reads 1e-400 as 0 (an infinite NLL, exit 0) and 1e400 as infinity."""
    path = tmp_path / "u.csv"
    path.write_text(f"label,a,b\n0,0.5,0.5\n0,{cell},{other}\n0,0.5,0.5\n")
    assert main(["report", str(path), *form, *_FAST]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    monkeypatch.setattr(tables, "_CSV_BLOCK_BYTES", 1 << 10)  # the cell in a later batch
    path.write_text("label,a,b\n" + "0,0.5,0.5\n" * 1000 + f"0,{cell},{other}\n")
    assert main(["report", str(path), *form, *_FAST]) == 2
    assert message.replace("row 1", "row 1000") in capsys.readouterr().err


@pytest.mark.parametrize("zero", ["0", "-0", "0.0", "0e0", "+0.000E-7", ".0", "0."])
def test_a_zero_written_as_zero_is_read(
    zero: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "z.csv"
    path.write_text(f"label,a,b\n0,0.5,0.5\n1,{zero},1\n0,0.5,0.5\n")
    assert main(["report", str(path), "--json", *_FAST]) == 0
    assert json.loads(capsys.readouterr().out)["nll_nats"] == pytest.approx(2 * math.log(2) / 3)
    path.write_text(f"label,a,b\n0,-inf,0\n1,{zero},-Infinity\n")
    assert main(["report", str(path), "--log-probs", "--json", *_FAST]) == 0


def test_null_and_nan_ids_are_told_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "i.csv"
    path.write_text("id,label,a,b\n,0,0.9,0.1\nnan,1,0.2,0.8\n3,0,0.6,0.4\n")
    assert main(["report", str(path), "--id-column", "id", "--json", *_FAST]) == 0
    rows = json.loads(capsys.readouterr().out)["most_surprising"]
    assert {row["index"]: row["id"] for row in rows} == {0: None, 1: "nan", 2: 3.0}
    assert main(["report", str(path), "--id-column", "id", *_FAST]) == 0
    out = capsys.readouterr().out
    assert "None" not in out
    assert "│ null │" in out
    assert "│  nan │" in out


def test_a_trailing_comma_in_the_header_is_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``label,a,b,``: the unnamed empty last column was taken as a pandas index, its
    empty cells the row ids."""
    path = tmp_path / "t.csv"
    path.write_text("label,a,b,\n0,0.9,0.1,\n1,0.2,0.8,\n0,0.6,0.4,\n")
    assert main(["report", str(path), "--json", *_FAST]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["columns"] == {
        "label": "label",
        "id": None,
        "classes": ["a", "b"],
        "ignored": [""],
    }
    assert all("id" not in row for row in report["most_surprising"])


def test_float32_beside_float64_columns_gets_float32_tolerance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Parquet file with a float32 and a float64 class column: its rows sum to 1 within
    float32's rounding, refused by float64's tolerance."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rng = np.random.default_rng(0)
    b = rng.uniform(0.1, 0.9, size=200)
    a32 = (1 - b).astype(np.float32)  # off 1 by up to 3e-8 once added to b
    assert np.abs(a32.astype(np.float64) + b - 1).max() > 1e-12
    table = pa.table({"label": rng.integers(0, 2, size=200), "a": pa.array(a32), "b": pa.array(b)})
    path = tmp_path / "mixed.parquet"
    pq.write_table(table, path)
    assert main(["report", str(path), "--json", *_FAST]) == 0, capsys.readouterr().err
    got = json.loads(capsys.readouterr().out)
    assert got["n"] == 200
    table = pa.table({"label": [0, 1], "a": pa.array([0.5, 1], pa.float32()), "b": [0.5, 1e-50]})
    pq.write_table(table, path)  # 1e-50 as float32 would be 0: refused, not rounded
    assert main(["report", str(path), *_FAST]) == 2
    err = capsys.readouterr().err
    assert "the 'b' column holds 1e-50 in row 1, which float32 cannot hold" in err
    assert "the other class columns are float32" in err
