"""Issue 13, an eighth hostile pass over the command line (branch hostilecli8).

* With ``PYTHONUNBUFFERED=1`` (``python -u``; a common line of Dockerfiles), a report
  printed to a file on a device that filled up (``crossent report a.npz > out.txt``)
  ended after the bytes that fitted, exit 0 and no message: Python's unbuffered text
  stream drops the rest of a short write, and the terminal report is printed in one
  write.  Now exit 2 with "standard output: cannot write the report (No space left on
  device)", as with Python's default buffered stream.
* At 80 columns (the width of a report redirected to a file, or read in CI) the tables
  cut long names to "…": two models in ``runs/<long name>/preds.npz`` were both printed
  as ``/tmp/.../experime…`` (which model had which accuracy was lost), and every id of
  image paths as ``data/imagenet/…``.  Names are now folded onto more lines, whole.
"""

from __future__ import annotations

import errno
import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import crossent
from crossent.cli import _console, main
from crossent.cli._render import render_comparison_terminal, render_terminal

pytest.importorskip("rich")

_FAST = ["--resamples", "5", "--top", "3"]


class _FillingDevice(io.RawIOBase):
    """A file on a device with ``room`` bytes free: a write takes what fits (a short
    write, as the kernel's), the next one fails with ENOSPC."""

    def __init__(self, room: int) -> None:
        super().__init__()
        self.room = room
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        if self.room == 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        view = memoryview(data).cast("B")  # type: ignore[arg-type]
        taken = min(len(view), self.room)
        self.data += view[:taken]
        self.room -= taken
        return taken


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "{model}", *_FAST],
        ["explain", "--logits", "1,2,3", "--label", "0"],
        ["demo"],
        ["--version"],
    ],
    ids=["report", "explain", "demo", "version"],
)
def test_a_device_that_fills_under_unbuffered_stdout_is_an_error(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    argv: list[str],
) -> None:
    if "{model}" in argv:
        rng = np.random.default_rng(0)
        model = tmp_path / "a.npz"
        np.savez(model, probs=rng.dirichlet(np.ones(3), size=30), labels=rng.integers(0, 3, 30))
        argv = [str(model) if arg == "{model}" else arg for arg in argv]
    # what Python makes of standard output under PYTHONUNBUFFERED=1 (create_stdio)
    device = _FillingDevice(room=10**6)
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(device, "utf-8", write_through=True))
    assert main(argv) == 0
    assert capsys.readouterr().err == ""
    whole = bytes(device.data)
    # the device fills 5 bytes before the end: the last write is a short one
    device = _FillingDevice(room=len(whole) - 5)
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(device, "utf-8", write_through=True))
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("crossent: error: standard output: cannot write the ")
    assert err.endswith(" (No space left on device)\n")
    assert err.count("\n") == 1
    assert bytes(device.data) == whole[:-5]


def _first_cells(out: str, title: str) -> list[str]:
    """The first column of the table titled ``title``, each row's folded lines joined."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(title))
    rows: list[str] = []
    body = False
    for line in lines[start + 1 :]:
        if line.startswith("┡"):
            body = True
        elif line.startswith("└"):
            break
        elif body and line.startswith("│"):
            cells = [cell.strip() for cell in line.split("│")[1:-1]]
            if cells[1]:  # a row's first line: its second column has a value
                rows.append(cells[0])
            else:
                rows[-1] += cells[0]
    return rows


_NAMES = ["golden_retriever_dog", "labrador_retriever_dog", "tabby_cat_domestic"]
_IDS = [f"data/imagenet/val/n01440764/ILSVRC2012_val_{i:08d}.JPEG" for i in range(30)]


@pytest.fixture(scope="module")
def long_names() -> crossent.Report:
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(3), size=30)
    labels = rng.integers(0, 3, 30)
    return crossent.report(probs, labels, class_names=_NAMES, ids=_IDS, resamples=5, top=3)


def _printed(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    columns: int,
    render: Callable[[Any], None],
) -> str:
    """What ``render`` prints on the CLI's console ``columns`` wide; nothing cut to "…"."""
    monkeypatch.setenv("COLUMNS", str(columns))
    render(_console())
    out = capsys.readouterr().out
    assert "…" not in out
    return out


@pytest.mark.parametrize("columns", [80, 40], ids=["80", "40"])
def test_ids_class_names_and_numbers_stay_whole(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    long_names: crossent.Report,
    columns: int,
) -> None:
    """80 columns: a report redirected to a file, or read in CI; 40: a split pane, where
    the per-class table printed ``0.2758`` as ``0.2…``."""
    render = lambda console: render_terminal(long_names, console)  # noqa: E731
    out = _printed(capsys, monkeypatch, columns, render)
    shown = _first_cells(out, "most surprising examples")
    assert len(shown) == 3
    assert set(shown) <= set(_IDS)
    assert _first_cells(out, "cross-entropy per true class") == _NAMES
    for row in long_names.to_dict()["per_class"]:
        assert f"{row['calibration_error']:.4f} │" in out


def test_long_model_paths_stay_whole_at_80_columns(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    long_names: crossent.Report,
) -> None:
    paths = [
        f"/tmp/pytest-of-ci/runs/experiment_2026_12_05_resnet50_baseline_lr_{rate}/preds.npz"
        for rate in ("0.1", "0.01")
    ]
    comparison = crossent.compare_reports([long_names] * 2, names=paths, resamples=5)
    out = _printed(
        capsys, monkeypatch, 80, lambda console: render_comparison_terminal(comparison, console)
    )
    assert _first_cells(out, "2 models on the same examples") == paths
    assert _first_cells(out, "paired differences against") == [paths[1], paths[1]]


def test_a_class_column_whose_name_holds_a_comma_can_be_listed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``--class-columns`` split at every comma: the CSV column ``"a,b"`` could not be
    named (needed to leave out an extra column); it is quoted as in the header."""
    path = tmp_path / "comma.csv"
    path.write_text('label,"a,b",c,extra\n0,0.7,0.3,x\n1,0.2,0.8,y\n0,0.6,0.4,z\n')
    argv = ["report", str(path), "--class-columns", '"a,b", c', "--json", *_FAST]
    assert main(argv) == 0, capsys.readouterr().err
    columns = json.loads(capsys.readouterr().out)["columns"]
    assert (columns["classes"], columns["ignored"]) == (["a,b", "c"], ["extra"])


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    return err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
def test_a_pipe_as_path_names_standard_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``crossent report <(zcat preds.csv.gz)`` (a pipe, ``/dev/fd/63``): the error said
    to save the data to a file, not that a CSV can be piped into ``crossent report -``."""
    fifo = tmp_path / "preds.csv"
    os.mkfifo(fifo)
    err = _one_line_error(capsys, ["report", str(fifo), *_FAST])
    assert err.endswith("(a CSV can also be piped: ... | crossent report -)\n")


def test_labels_from_standard_input_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``--labels -`` said "-: --labels reads ... got '(no extension)'"."""
    predictions = tmp_path / "p.npy"
    np.save(predictions, np.full((4, 2), 0.5))
    err = _one_line_error(capsys, ["report", str(predictions), "--labels", "-", *_FAST])
    assert err == (
        "crossent: error: --labels -: standard input is read only as the predictions' CSV "
        "(crossent report -); give the labels' file\n"
    )


@pytest.mark.parametrize(
    ("cell", "flags", "said"),
    [
        ("nan", ["--logits"], "the predictions (logits) contain NaN in row 1, column 'a'"),
        ("-0.1", [], "got -0.1 in row 1, column 'a'"),
    ],
    ids=["nan", "negative"],
)
def test_a_tables_bad_value_is_named_by_row_and_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cell: str, flags: list[str], said: str
) -> None:
    """A CSV's bad value was placed "at index (1, 0)" (the matrix's terms); a table's
    other messages name the row and the column, here ``a`` listed second."""
    path = tmp_path / "p.csv"
    path.write_text(f"label,b,a\n0,0.5,0.5\n1,1.1,{cell}\n")
    err = _one_line_error(capsys, ["report", str(path), "--class-columns", "a,b", *flags])
    assert said in err


def test_a_class_column_of_text_names_its_first_text_cell(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``-1.#INF`` (Windows' C runtime) among logits: the error said the column must be
    numeric and to make it the id column, not which cell is not a number."""
    path = tmp_path / "p.csv"
    path.write_text("label,a,b\n0,1.0,0.5\n1,0.5,-1.#INF\n")
    err = _one_line_error(capsys, ["report", str(path), "--logits"])
    assert "column 'b' must be numeric to be a class (row 1 holds '-1.#INF', not a number)" in err


def test_null_temperature_is_explained_once(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A label of probability 0: the report's note names the row; the terminal printed it
    and, a few lines below, a second, vaguer line saying the same (stop 55's lead)."""
    probs = np.array([[0.0, 0.5, 0.5], [0.2, 0.3, 0.5], [0.6, 0.2, 0.2], [0.1, 0.8, 0.1]] * 5)
    labels = np.array([0, 2, 0, 1] * 5)
    report = crossent.report(probs, labels, form="probs", resamples=5)
    out = _printed(capsys, monkeypatch, 80, lambda console: render_terminal(report, console))
    assert out.count("row 0's label has probability 0") == 1
    assert "temperature: not fitted" not in out
