"""`crossent report` on bad input: exit 2, one or two lines naming the file, row and problem,
no traceback, and never a partial output file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import crossent.cli
from crossent.cli import main

from .conftest import make_predictions, softmax


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    _out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert 1 <= len(err.strip().splitlines()) <= 2, err
    assert err.startswith("crossent: error: ")
    return err


def _npz(tmp_path: Path, name: str = "bad.npz", **arrays: object) -> Path:
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def _bad_probs(change: str) -> dict[str, np.ndarray]:
    logits, labels = make_predictions(n=20)
    probs = softmax(logits)
    if change == "nan":
        probs[7, 2] = np.nan
    elif change == "inf":
        probs[7, 2] = np.inf
    elif change == "negative":
        probs[7, 2] = -0.1
        probs[7, 0] += 0.1
    elif change == "sum":
        probs[7] *= 1.01
    elif change == "label-range":
        labels[7] = 9
    elif change == "label-negative":
        labels[7] = -1
    return {"probs": probs, "labels": labels}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("nan", r"`probs` contains NaN at index \(7, 2\)"),
        ("inf", r"`probs` must be finite; got inf at index \(7, 2\)"),
        ("negative", r"must be non-negative.*index \(7, 2\)"),
        ("sum", r"row 7 sums to 1\.01"),
        ("label-range", r"`labels` must be integers in \[0, 4\).*row 7 has 9"),
        ("label-negative", r"row 7 has -1"),
    ],
)
def test_bad_values_name_the_file_and_the_first_offending_row(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, change: str, message: str
) -> None:
    path = _npz(tmp_path, **_bad_probs(change))
    err = _error(capsys, ["report", str(path)])
    assert str(path) in err
    assert pytest.importorskip("re").search(message, err), err


def test_rows_are_numbered_across_batches(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import crossent._report._compute as report  # issue 14: the computation is the library's

    monkeypatch.setattr(report, "BATCH_ROWS", 8)
    path = _npz(tmp_path, **_bad_probs("sum") | {})
    probs = np.load(path)["probs"]
    probs[7] /= 1.01
    probs[13] *= 1.01
    np.savez(path, probs=probs, labels=np.load(path)["labels"])
    assert "row 13 sums to" in _error(capsys, ["report", str(path)])


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: d / "missing.npz", "no such file"),
        (lambda d: d, "is a directory"),
        (lambda d: _write(d / "empty.npz", b""), "the file is empty"),
        (lambda d: _write(d / "data.txt", b"1,2"), "unknown format '.txt'"),
        (lambda d: _write(d / "broken.npz", b"not a zip"), "not a valid .npz file"),
        (lambda d: _npz(d, probs=np.eye(2)), "no array named 'labels'"),
        (lambda d: _npz(d, labels=np.arange(2)), "no predictions"),
        (
            lambda d: _npz(d, probs=np.eye(2), logits=np.eye(2), labels=np.arange(2)),
            "two prediction arrays",
        ),
        (lambda d: _npz(d, probs=np.eye(2), labels=np.arange(3)), "'labels' has 3 rows but"),
        (lambda d: _npz(d, probs=np.eye(2), labels=np.array([0.0, 1.0])), "must be integers"),
        # a 1-D array is binary P(label = 1) (issue 14); three dimensions are an error
        (
            lambda d: _npz(d, probs=np.ones((2, 2, 1)) / 2, labels=np.arange(2)),
            "must have shape (rows, classes)",
        ),
        (lambda d: _npz(d, probs=np.zeros((0, 3)), labels=np.zeros(0, int)), "there are no rows"),
        (lambda d: _write(d / "a.csv", b"x,y\n0.5,0.5\n"), "no 'label' column"),
        (lambda d: _write(d / "a.csv", b"label,a,b\n0.5,0.5,0.5\n"), "must hold integers"),
        (lambda d: _write(d / "a.csv", b"label,a,b\n0,x,0.5\n"), "column 'a' must be numeric"),
        (lambda d: _write(d / "a.csv", b"label,a,b\n0,0.5,0.5\n1,0.7,0.7\n"), "row 1 sums to 1.4"),
        (lambda d: _write(d / "a.csv", b"label,a,b\n0,0.5,0.5\n2,0.3,0.7\n"), "row 1 has 2"),
    ],
)
def test_file_problems_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, setup: object, message: str
) -> None:
    pytest.importorskip("pyarrow")
    path = setup(tmp_path)  # type: ignore[operator]
    err = _error(capsys, ["report", str(path)])
    assert message in err, err
    assert str(path) in err


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_a_failed_run_leaves_no_output_file_and_keeps_an_old_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = _npz(tmp_path, **_bad_probs("nan"))
    fresh = tmp_path / "fresh.html"
    _error(capsys, ["report", str(bad), "--output", str(fresh)])
    assert not fresh.exists()
    old = tmp_path / "old.html"
    old.write_text("previous report")
    _error(capsys, ["report", str(bad), "--output", str(old)])
    assert old.read_text() == "previous report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz", "old.html"]


def test_output_into_a_missing_folder_is_an_input_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, npz_logits: Path
) -> None:
    pytest.importorskip("matplotlib")
    target = tmp_path / "nowhere" / "r.html"
    err = _error(capsys, ["report", str(npz_logits), "--resamples", "10", "--output", str(target)])
    assert "does not exist" in err


def test_a_failure_while_writing_removes_the_temporary_file(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    npz_logits: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import crossent.cli._files as files

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", fail)
    target = tmp_path / "r.html"
    err = _error(capsys, ["report", str(npz_logits), "--resamples", "10", "--output", str(target)])
    assert "No space left on device" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds.npz"]


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], npz_logits: Path) -> None:
    assert main(["report", str(npz_logits), "--logits", "--log-probs"]) == 2
    capsys.readouterr()
    err = _error(capsys, ["report", str(npz_logits), "--logits"])
    assert "the array's name" in err
    assert main(["report", str(npz_logits), "--bins", "0"]) == 2  # refused while parsing
    assert "argument --bins: must be a positive integer; got '0'" in capsys.readouterr().err


def test_an_internal_error_exits_3_with_a_short_message(
    capsys: pytest.CaptureFixture[str], npz_logits: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(crossent.cli, "build_report", broken)
    assert main(["report", str(npz_logits)]) == 3
    err = capsys.readouterr().err
    assert "internal error (RuntimeError: boom)" in err
    assert "Traceback" not in err
    assert main(["--debug", "report", str(npz_logits)]) == 3
    assert "Traceback" in capsys.readouterr().err
    assert crossent.cli.EXIT_INTERNAL == 3
