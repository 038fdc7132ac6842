"""Issue 13, a third hostile pass over ``crossent report``'s files and output: each test
pins a defect found by attacking the command line and its readers, and fails on main at
6a130e6 (the commit message of each fix says how many).

* a class column or a compared model's path holding two ``$`` (``$\\frac$``, ``a$b$``)
  was read by matplotlib as mathtext: ``--output`` (and ``Report.to_html``) ended with
  exit 3 (``ParseSyntaxException``) or drew another text;
* ``crossent report - --output preds.csv < preds.csv`` replaced the input with the HTML
  report (standard input was not compared with the output);
* a ``.safetensors`` header whose shape's product overflows int64 (``[2**33, 2**31]``
  holding 0 bytes) was exit 3 ("array is too big"); shapes of floats or strings
  (``[4.7]``) were read as integers, and tensors whose bytes overlap, leave a gap or stop
  before the end of the file were read, not refused as the format requires; boolean
  labels (``BOOL``) were refused, which every other format reads as the classes 0 and 1;
* a CSV whose class column held whole numbers in its first block (16 MB) and a decimal
  later (``0``/``1`` hard predictions first) was refused as "cannot be parsed (... CSV
  conversion error to int64: invalid value '0.25')";
* an ``.npz`` whose labels member declared far more rows than its predictions was read
  whole into memory (a 100 kB file, 100 MB) before the rows were compared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import crossent
from crossent.cli import main

from .conftest import make_predictions, softmax

pytest.importorskip("rich")

_FAST = ["--resamples", "5", "--top", "3"]


def _usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    _out, err = capsys.readouterr()
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "internal error" not in err
    return err


def _csv(path: Path, names: list[str], n: int = 30, seed: int = 0) -> Path:
    logits, labels = make_predictions(n=n, classes=len(names), seed=seed)
    probs = softmax(logits)
    header = ",".join(['"' + name.replace('"', '""') + '"' for name in ["label", *names]])
    rows = [
        f"{y}," + ",".join(repr(float(v)) for v in row)
        for y, row in zip(labels, probs, strict=True)
    ]
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


# --- text in figures is drawn as typed, never as mathtext --------------------------------

_MATHTEXT_NAMES = ["$\\frac$", "a$b$", "$x^$"]


@pytest.mark.parametrize("name", _MATHTEXT_NAMES)
def test_dollar_signs_in_class_names_give_an_html_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    pytest.importorskip("matplotlib")
    source = _csv(tmp_path / "t.csv", [name, "b", "c"])
    output = tmp_path / "r.html"
    code = main(["report", str(source), "--output", str(output), *_FAST])
    _out, err = capsys.readouterr()
    assert code == 0, err
    assert name.replace("$", "") in output.read_text().replace("$", "")


def test_dollar_signs_in_compared_paths_give_an_html_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    logits, labels = make_predictions(n=30, classes=3)
    first, second = tmp_path / "a.npz", tmp_path / "x$\\frac$.npz"
    np.savez(first, logits=logits, labels=labels)
    np.savez(second, logits=logits * 0.5, labels=labels)
    output = tmp_path / "r.html"
    code = main(["report", str(first), str(second), "--output", str(output), *_FAST])
    _out, err = capsys.readouterr()
    assert code == 0, err
    assert output.is_file()


def test_library_to_html_draws_class_names_as_typed() -> None:
    pytest.importorskip("matplotlib")
    logits, labels = make_predictions(n=30, classes=3)
    report = crossent.report(
        logits, labels, form="logits", class_names=_MATHTEXT_NAMES, resamples=5
    )
    page = report.to_html()
    assert "$x^$" in page


# --- the output is never the input, standard input included -------------------------------


@pytest.mark.parametrize("through", ["same", "link", "hard link"])
def test_output_that_is_the_file_on_standard_input_is_refused(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    through: str,
) -> None:
    """``crossent report - --output preds.csv < preds.csv`` replaced the table by the
    HTML page (exit 0): '-' was left out of the inputs the output is compared with."""
    source = _csv(tmp_path / "preds.csv", ["a", "b", "c"])
    before = source.read_bytes()
    output = source
    if through == "link":
        output = tmp_path / "link.html"
        output.symlink_to(source)
    elif through == "hard link":
        output = tmp_path / "hard.html"
        output.hardlink_to(source)
    with open(source, encoding="utf-8") as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        err = _usage_error(capsys, ["report", "-", "--output", str(output), *_FAST])
    assert "standard input" in err
    assert source.read_bytes() == before


def test_standard_input_from_another_file_may_write_the_output(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    source = _csv(tmp_path / "preds.csv", ["a", "b", "c"])
    output = tmp_path / "r.html"
    output.write_text("old")
    with open(source, encoding="utf-8") as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        code = main(["report", "-", "--output", str(output), *_FAST])
    _out, err = capsys.readouterr()
    assert code == 0, err
    assert output.read_text().startswith("<!DOCTYPE html>")
