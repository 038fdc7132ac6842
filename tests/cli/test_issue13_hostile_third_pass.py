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

import io
import json
import math
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import crossent
import crossent.cli
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


# --- safetensors headers checked as the format's reference implementation checks them ----


def _safetensors(path: Path, header: dict[str, Any], data: bytes) -> Path:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def _report_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    code = main(["report", *argv, "--json", *_FAST])
    out, err = capsys.readouterr()
    assert code == 0, err
    return dict(json.loads(out))


_LABELS = np.array([0, 1, 1, 0, 1, 0], dtype="<i8")
_LOGITS = np.linspace(-2, 2, 12, dtype="<f4").reshape(6, 2)


@pytest.mark.parametrize(
    ("case", "shape"),
    [
        ("product wraps to 0", [2**33, 2**31]),
        ("empty but impossible", [2**62, 4, 0]),
    ],
)
def test_safetensors_shapes_no_array_can_have_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str, shape: list[int]
) -> None:
    """int64's np.prod wrapped to 0, so the header "held" its 0 bytes: exit 3."""
    labels = _LABELS.tobytes()
    path = _safetensors(
        tmp_path / "t.safetensors",
        {
            "labels": {"dtype": "I64", "shape": [6], "data_offsets": [0, 48]},
            "logits": {"dtype": "F32", "shape": shape, "data_offsets": [48, 48]},
        },
        labels,
    )
    err = _usage_error(capsys, ["report", str(path), *_FAST])
    assert err.startswith(f"crossent: error: {path}: tensor 'logits'"), err


def _layouts() -> dict[str, tuple[dict[str, Any], bytes]]:
    labels, logits = _LABELS.tobytes(), _LOGITS.tobytes()
    lab = {"dtype": "I64", "shape": [6], "data_offsets": [0, 48]}
    log = {"dtype": "F32", "shape": [6, 2], "data_offsets": [48, 96]}
    return {
        "float shape": ({"labels": {**lab, "shape": [6.9]}, "logits": log}, labels + logits),
        "string shape": ({"labels": lab, "logits": {**log, "shape": ["6", 2]}}, labels + logits),
        "boolean offset": (
            {"labels": {**lab, "data_offsets": [False, 48]}, "logits": log},
            labels + logits,
        ),
        "gap": (
            {"labels": lab, "logits": {**log, "data_offsets": [56, 104]}},
            labels + bytes(8) + logits,
        ),
        "overlap": (
            {
                "labels": lab,
                "logits": {"dtype": "F32", "shape": [6, 2], "data_offsets": [40, 88]},
            },
            labels + logits[:40],
        ),
        "trailing bytes": ({"labels": lab, "logits": log}, labels + logits + b"#!/bin/sh\n"),
    }


@pytest.mark.parametrize("case", sorted(_layouts()))
def test_safetensors_layouts_the_format_forbids_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str
) -> None:
    """Each was read (exit 0, or a label error from bytes read twice) on main."""
    header, data = _layouts()[case]
    path = _safetensors(tmp_path / "t.safetensors", header, data)
    err = _usage_error(capsys, ["report", str(path), *_FAST])
    assert err.startswith(f"crossent: error: {path}: "), err
    assert "must be integers in" not in err  # not the labels read from the logits' bytes


def test_safetensors_valid_layout_still_reads(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    header = {
        "__metadata__": {"format": "np"},
        "logits": {"dtype": "F32", "shape": [6, 2], "data_offsets": [0, 48]},
        "labels": {"dtype": "I64", "shape": [6], "data_offsets": [48, 96]},
    }
    path = _safetensors(tmp_path / "t.safetensors", header, _LOGITS.tobytes() + _LABELS.tobytes())
    np.savez(tmp_path / "t.npz", logits=_LOGITS, labels=_LABELS)
    got = _report_json(capsys, [str(path)])
    want = _report_json(capsys, [str(tmp_path / "t.npz")])
    assert (got["nll_nats"], got["ece"]["value"]) == (want["nll_nats"], want["ece"]["value"])


def test_safetensors_boolean_labels_are_the_classes_0_and_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """safetensors' BOOL (``save_file({"labels": y == 1, ...})``) was "unsupported dtype";
    every other format reads booleans as the classes 0 (False) and 1 (True)."""
    flags = _LABELS.astype(np.uint8).tobytes()
    path = _safetensors(
        tmp_path / "b.safetensors",
        {
            "labels": {"dtype": "BOOL", "shape": [6], "data_offsets": [0, 6]},
            "logits": {"dtype": "F32", "shape": [6, 2], "data_offsets": [6, 54]},
        },
        flags + _LOGITS.tobytes(),
    )
    np.savez(tmp_path / "t.npz", logits=_LOGITS, labels=_LABELS)
    np.save(tmp_path / "z.npy", _LOGITS)
    alone = _safetensors(
        tmp_path / "y.safetensors",
        {"labels": {"dtype": "BOOL", "shape": [6], "data_offsets": [0, 6]}},
        flags,
    )
    want = _report_json(capsys, [str(tmp_path / "t.npz")])
    for argv in ([str(path)], [str(tmp_path / "z.npy"), "--logits", "--labels", str(alone)]):
        got = _report_json(capsys, argv)
        assert (got["nll_nats"], got["accuracy"]) == (want["nll_nats"], want["accuracy"])
    _safetensors(
        alone,
        {"labels": {"dtype": "BOOL", "shape": [6], "data_offsets": [0, 6]}},
        b"\x00\x01\x02\x00\x01\x00",
    )
    err = _usage_error(
        capsys, ["report", str(tmp_path / "z.npy"), "--logits", "--labels", str(alone)]
    )
    assert "other than 0 and 1" in err


# --- empty arrays of shapes NumPy cannot make ---------------------------------------------


def _npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


@pytest.mark.parametrize("where", ["npy", "labels npy", "npz"])
def test_empty_arrays_of_impossible_shapes_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, where: str
) -> None:
    """A header of shape (2**62, 4, 0) describes 0 bytes, which the file holds, but NumPy
    cannot make the array ("array is too big"): exit 3 on main."""
    bomb = _npy_header((2**62, 4, 0))
    np.save(tmp_path / "z.npy", _LOGITS)
    np.save(tmp_path / "y.npy", _LABELS)
    if where == "npz":
        path = tmp_path / "b.npz"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("logits.npy", bomb)
            archive.writestr("labels.npy", _npy_header((2**62, 0), "<i8"))
        argv = [str(path)]
    else:
        path = tmp_path / "b.npy"
        path.write_bytes(bomb)
        argv = (
            [str(path), "--logits", "--labels", str(tmp_path / "y.npy")]
            if where == "npy"
            else [str(tmp_path / "z.npy"), "--logits", "--labels", str(path)]
        )
    err = _usage_error(capsys, ["report", *argv, *_FAST])
    assert "too large for any array" in err, err


_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "U8": 1, "BOOL": 1}
_DTYPE_NAMES = ["F64", "F32", "F16", "BF16", "I64", "I32", "U8", "BOOL", "F8_E4M3", "X"]
_sizes = st.one_of(st.integers(0, 8), st.sampled_from([2**31, 2**32, 2**33, 2**62, 2**63]))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    entries=st.lists(
        st.tuples(
            st.sampled_from(["labels", "logits", "labels", "logits", "probs", "x"]),
            st.sampled_from(_DTYPE_NAMES),
            st.lists(_sizes, max_size=3),
            st.integers(0, 80),
            st.one_of(st.just(0), st.integers(0, 80), st.none()),
        ),
        min_size=1,
        max_size=3,
    ),
    data_size=st.integers(0, 160),
)
@example(  # int64's product wraps to 0: exit 3 on main
    entries=[("labels", "I64", [4], 0, None), ("logits", "F32", [2**63, 2], 32, 0)],
    data_size=32,
)
@example(  # no bytes, and no array NumPy can make: exit 3 on main
    entries=[("labels", "I64", [2**62, 0], 0, None), ("probs", "F64", [0, 2], 0, None)],
    data_size=0,
)
def test_fuzzed_safetensors_headers_exit_0_or_2(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    entries: list[tuple[str, str, list[int], int, int | None]],
    data_size: int,
) -> None:
    """Well-formed JSON headers with random names, dtypes, shapes (huge ones included)
    and offsets (a length of None: the shape's bytes exactly): exit 0 or 2 in one line,
    never an internal error."""
    header = {
        name: {
            "dtype": kind,
            "shape": shape,
            "data_offsets": [
                begin,
                begin
                + (length if length is not None else _ITEMSIZE.get(kind, 3) * math.prod(shape)),
            ],
        }
        for name, kind, shape, begin, length in entries
    }
    data = np.random.default_rng(len(entries)).integers(0, 2, data_size, dtype=np.uint8)
    path = _safetensors(tmp_path / "f.safetensors", header, data.tobytes())
    code = main(["report", str(path), "--json", "--resamples", "3", "--top", "1"])
    _out, err = capsys.readouterr()
    assert code in (0, 2), err
    if code == 2:
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith(f"crossent: error: {path}"), err


# --- a CSV column whose type changes after pyarrow's first block ----------------------------


def _block_csv(path: Path, late: str = "0.25,0.75", *, extra: str | None = None) -> Path:
    """3000 rows of hard 0/1 predictions (whole numbers: int64 in the first block), then
    ten rows of decimals; ``extra`` adds a column (its first-block value, then 0.5)."""
    head = "label,a,b" + (",extra" if extra is not None else "")
    first = "0,1,0" + (f",{extra}" if extra is not None else "")
    later = f"1,{late}" + (",0.5" if extra is not None else "")
    path.write_text("\n".join([head, *[first] * 3000, *[later] * 10]) + "\n")
    return path


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyarrow's first block is 4 kB instead of 16 MB: the same inference, in a small file."""
    import crossent.cli._tables

    pytest.importorskip("pyarrow")
    monkeypatch.setattr(crossent.cli._tables, "_CSV_BLOCK_BYTES", 1 << 12)


def test_csv_class_column_of_whole_numbers_then_decimals_is_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, small_blocks: None
) -> None:
    """Exit 2 on main: "cannot be parsed (In CSV column #1: CSV conversion error to
    int64: invalid value '0.25')"; the table of the same values written as decimals read."""
    drifting = _block_csv(tmp_path / "drift.csv")
    decimals = tmp_path / "decimals.csv"
    decimals.write_text(drifting.read_text().replace(",1,0\n", ",1.0,0.0\n"))
    got = _report_json(capsys, [str(drifting)])
    want = _report_json(capsys, [str(decimals)])
    assert got["nll_nats"] == want["nll_nats"] == pytest.approx(10 * -np.log(0.75) / 3010)
    assert got["per_class"] == want["per_class"]


def test_csv_on_standard_input_whose_column_changes_type_is_read(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    small_blocks: None,
) -> None:
    """Standard input is read again from the scratch copy kept as it was read."""
    drifting = _block_csv(tmp_path / "drift.csv", extra="1")
    want = _report_json(capsys, [str(drifting), "--class-columns", "a,b"])
    with open(drifting, encoding="utf-8") as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        got = _report_json(capsys, ["-", "--class-columns", "a,b"])
    assert got["nll_nats"] == want["nll_nats"]


@pytest.mark.parametrize(("extra", "ignored"), [("1", "extra"), ("true", "extra"), ("", "extra")])
def test_csv_ignored_column_that_changes_type_does_not_stop_the_report(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    small_blocks: None,
    extra: str,
    ignored: str,
) -> None:
    """A column the report does not read (integers, booleans or empty cells in the first
    block, then 0.5): exit 2 "cannot be parsed" on main."""
    path = _block_csv(tmp_path / "drift.csv", "0.25,0.75", extra=extra)
    got = _report_json(capsys, [str(path), "--class-columns", "a,b"])
    assert got["columns"]["ignored"] == [ignored]


def test_labels_table_whose_other_column_changes_type_is_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, small_blocks: None
) -> None:
    table = _block_csv(tmp_path / "t.csv", "0.25,0.75")
    np.save(tmp_path / "p.npy", np.array([[1.0, 0.0]] * 3000 + [[0.25, 0.75]] * 10))
    got = _report_json(capsys, [str(tmp_path / "p.npy"), "--labels", str(table)])
    assert got["nll_nats"] == pytest.approx(10 * -np.log(0.75) / 3010)


def test_csv_class_column_with_a_word_after_numbers_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, small_blocks: None
) -> None:
    """A word in a class column is still refused, by the class column check's message."""
    path = _block_csv(tmp_path / "drift.csv", "oops,0.75")
    err = _usage_error(capsys, ["report", str(path), *_FAST])
    assert "column 'a' must be numeric to be a class" in err, err


# --- an .npz member is checked before it is read --------------------------------------------


def test_npz_labels_declaring_far_more_rows_are_refused_unread(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A 130 kB .npz whose labels member inflates to 128 MB: main read all of it into
    memory, then refused its rows; now the declared shapes are compared first."""
    import tracemalloc

    path = tmp_path / "bomb.npz"
    rows = 1 << 24
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("labels.npy", "w", force_zip64=True) as member:
            member.write(_npy_header((rows,), "<i8"))
            chunk = bytes(1 << 20)
            for _ in range(rows * 8 // len(chunk)):
                member.write(chunk)
        archive.writestr("logits.npy", _npy_bytes(_LOGITS))
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        err = _usage_error(capsys, ["report", str(path), *_FAST])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f"'labels' has {rows} rows but 'logits' has 6" in err, err
    assert peak < 16 << 20, peak


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _encrypted(path: Path, arrays: dict[str, np.ndarray], member: str) -> Path:
    """An .npz whose ``member`` says it is encrypted (the flag bit of its two headers)."""
    np.savez(path, **arrays)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{member}.npy")
    data[info.header_offset + 6] |= 1
    central = data.find(b"PK\x01\x02")  # the central directory's entries
    while central >= 0:
        name_length = struct.unpack("<H", data[central + 28 : central + 30])[0]
        if data[central + 46 : central + 46 + name_length] == f"{member}.npy".encode():
            data[central + 8] |= 1
        central = data.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("how", ["predictions file", "--labels file"])
def test_npz_encrypted_labels_are_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, how: str
) -> None:
    """zipfile's RuntimeError ("password required for extraction") was exit 3 on main."""
    arrays = {"logits": _LOGITS, "labels": _LABELS}
    if how == "predictions file":
        path = _encrypted(tmp_path / "e.npz", arrays, "labels")
        argv = [str(path)]
    else:
        path = _encrypted(tmp_path / "e.npz", {"labels": _LABELS}, "labels")
        np.save(tmp_path / "z.npy", _LOGITS)
        argv = [str(tmp_path / "z.npy"), "--logits", "--labels", str(path)]
    err = _usage_error(capsys, ["report", *argv, *_FAST])
    assert f"{path}: the array 'labels' is encrypted" in err, err


# --- --output /dev/stdout when standard output is a file ------------------------------------


def _crossent(argv: list[str], **streams: Any) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ)
    source_root = Path(crossent.cli.__file__).parents[2]
    env["PYTHONPATH"] = os.pathsep.join([str(source_root), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "crossent", *argv],
        timeout=300,
        env=env,
        check=False,
        stderr=subprocess.PIPE,
        **streams,
    )


@pytest.mark.skipif(not Path("/dev/stdout").exists(), reason="no /dev/stdout")
def test_output_to_dev_stdout_appended_to_a_file_keeps_the_file(tmp_path: Path) -> None:
    """``crossent report x --json --output /dev/stdout >> log``: main renamed the page
    over the log (its earlier lines lost) and the JSON went to the replaced file."""
    pytest.importorskip("matplotlib")
    np.savez(tmp_path / "t.npz", logits=_LOGITS, labels=_LABELS)
    log = tmp_path / "log.txt"
    log.write_text("an earlier line\n")
    with open(log, "ab") as appended:
        result = _crossent(
            ["report", str(tmp_path / "t.npz"), "--json", "--output", "/dev/stdout", *_FAST],
            stdout=appended,
        )
    assert result.returncode == 0, result.stderr
    text = log.read_text()
    assert text.startswith("an earlier line\n<!DOCTYPE html>"), text[:200]
    page_end = text.index("</html>")
    assert json.loads(text[page_end + len("</html>") :])["n"] == 6


@pytest.mark.skipif(not Path("/dev/fd").exists(), reason="no /dev/fd")
def test_output_to_an_open_descriptor_writes_through_it(tmp_path: Path) -> None:
    """``--output /dev/fd/N`` of a descriptor open on a file (``3>> log``) appends."""
    pytest.importorskip("matplotlib")
    np.savez(tmp_path / "t.npz", logits=_LOGITS, labels=_LABELS)
    log = tmp_path / "log.txt"
    log.write_text("an earlier line\n")
    with open(log, "ab") as appended:
        descriptor = appended.fileno()
        result = _crossent(
            ["report", str(tmp_path / "t.npz"), "--output", f"/dev/fd/{descriptor}", *_FAST],
            stdout=subprocess.DEVNULL,
            pass_fds=(descriptor,),
        )
    assert result.returncode == 0, result.stderr
    assert log.read_text().startswith("an earlier line\n<!DOCTYPE html>")


# --- a file name that is not UTF-8 -------------------------------------------------------------


def test_html_report_of_a_file_whose_name_is_not_utf8(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``bad\\xff.npz``: the text, JSON and Markdown reports printed, the HTML page was exit
    3 (``UnicodeEncodeError: ... surrogates not allowed``) on main."""
    pytest.importorskip("matplotlib")
    name = os.fsdecode(b"bad\xff.npz")
    try:
        np.savez(tmp_path / name, logits=_LOGITS, labels=_LABELS)
    except (OSError, UnicodeError):
        pytest.skip("the file system refuses names that are not UTF-8")
    output = tmp_path / "r.html"
    code = main(["report", str(tmp_path / name), "--json", "--output", str(output), *_FAST])
    _out, err = capsys.readouterr()
    assert code == 0, err
    assert "bad\\udcff.npz" in output.read_text(encoding="utf-8")


# --- escape sequences from the user's files never reach the terminal ------------------------

_TITLE = "\x1b]0;owned\x07"  # sets a terminal's title (OSC 0); \x1b[2J clears the screen


def _escapes_csv(path: Path) -> Path:
    logits, labels = make_predictions(n=30, classes=3)
    probs = softmax(logits)
    header = "id,label,\x1b[2Jred,b\u202e,c"
    rows = [
        f"r{k}{_TITLE},{y}," + ",".join(repr(float(v)) for v in row)
        for k, (y, row) in enumerate(zip(labels, probs, strict=True))
    ]
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("style", ["text", "--markdown", "compared"])
def test_control_characters_of_names_and_ids_are_printed_escaped(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    style: str,
) -> None:
    """Main printed a CSV header's ``\\x1b[2J`` and an id's OSC title sequence as they
    are: the terminal acted on them."""
    source = _escapes_csv(tmp_path / "t.csv")
    argv = ["report", str(source), "--id-column", "id", *_FAST]
    if style == "--markdown":
        argv.append("--markdown")
    elif style == "compared":  # a model's name is its path (short: a table cell)
        monkeypatch.chdir(tmp_path)
        Path("m\x1b[2J.csv").write_bytes(source.read_bytes())
        argv.insert(2, "m\x1b[2J.csv")
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    for raw in ("\x1b", "\x07", "\u202e"):
        assert raw not in out
    shown = {"compared": "m\\x1b[2J.csv", "--markdown": "\\x1b\\[2Jred"}  # Markdown: \[
    assert shown.get(style, "\\x1b[2Jred") in out
    if style == "text":
        assert "\\x1b]0;owned\\x07" in out  # the surprising rows' ids


def test_control_characters_in_an_error_are_escaped_on_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = "x\x1b[2J\nfake line.npz"
    err = _usage_error(capsys, ["report", str(tmp_path / name)])
    assert "\x1b" not in err
    assert "x\\x1b[2J\\x0afake line.npz: no such file" in err


def test_json_keeps_the_names_as_they_are(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = _escapes_csv(tmp_path / "t.csv")
    got = _report_json(capsys, [str(source), "--id-column", "id"])
    assert got["columns"]["classes"] == ["\x1b[2Jred", "b\u202e", "c"]
