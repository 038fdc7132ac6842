"""Issue 10, items 6, 14, 15, 17 and 20: damaged or unusual input files, missing optional
dependencies and the command's messages.  Every bad file exits 2 with one line naming it."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import crossent
from crossent.cli import main

from .conftest import make_predictions, softmax


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    _out, err = capsys.readouterr()
    assert code == 2, err
    assert "Traceback" not in err
    assert err.startswith("crossent: error: ")
    assert len(err.strip().splitlines()) == 1, err
    return err


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, object]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _zip(path: Path, members: dict[str, bytes], *, compressed: bool = False) -> Path:
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.fixture
def arrays() -> tuple[np.ndarray, np.ndarray]:
    return make_predictions(n=40)


# ---------------------------------------------------------------------------- item 6


@pytest.mark.parametrize("compressed", [False, True])
def test_issue10_item6_truncated_member_is_refused(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    arrays: tuple[np.ndarray, np.ndarray],
    compressed: bool,
) -> None:
    logits, labels = arrays
    short = _npy(logits)[: -4 * 8]  # the header says 40 rows; the member holds 36
    path = _zip(
        tmp_path / "short.npz",
        {"logits.npy": short, "labels.npy": _npy(labels)},
        compressed=compressed,
    )
    err = _error(capsys, ["report", str(path), "--json", "--resamples", "5"])
    assert str(path) in err
    assert "'logits' is damaged" in err
    assert "truncated" in err


def test_issue10_item6_flipped_bit_in_a_mapped_member_fails_its_crc(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, arrays: tuple[np.ndarray, np.ndarray]
) -> None:
    path = tmp_path / "flipped.npz"
    np.savez(path, logits=arrays[0], labels=arrays[1])
    data = bytearray(path.read_bytes())
    where = data.index(_npy(arrays[0])[-64:])  # inside the logits' values
    data[where + 3] ^= 0x10
    path.write_bytes(bytes(data))
    err = _error(capsys, ["report", str(path), "--json", "--resamples", "5"])
    assert "'logits' is damaged (bad CRC-32" in err


# ---------------------------------------------------------------------------- item 14


def _central_crc_flipped(path: Path, member: str) -> Path:
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02")
    while data[entry + 46 : entry + 46 + len(member)] != member.encode():
        entry = data.index(b"PK\x01\x02", entry + 4)
    data[entry + 16] ^= 0xFF  # the CRC-32 that zipfile checks
    path.write_bytes(bytes(data))
    return path


def _cases(tmp: Path, logits: np.ndarray, labels: np.ndarray) -> dict[str, tuple[Path, str]]:
    good_logits, good_labels = _npy(logits), _npy(labels)
    header_end = good_logits.index(b"}") + 1
    garbled = good_logits[:10] + b"{'descr': <f8, 'fortran_order'" + good_logits[40:]
    compressed = tmp / "crc.npz"
    np.savez_compressed(compressed, logits=logits, labels=labels)
    return {
        "object labels": (
            _zip(
                tmp / "obj.npz",
                {"logits.npy": good_logits, "labels.npy": _npy(labels.astype(object))},
            ),
            "never unpickles",
        ),
        "object logits": (
            _zip(
                tmp / "objl.npz",
                {"logits.npy": _npy(logits.astype(object)), "labels.npy": good_labels},
            ),
            "never unpickles",
        ),
        "corrupt header": (
            _zip(tmp / "hdr.npz", {"logits.npy": garbled, "labels.npy": good_labels}),
            "not a valid .npy array",
        ),
        "corrupt labels header": (
            _zip(
                tmp / "hdrl.npz",
                {
                    "logits.npy": good_logits,
                    "labels.npy": b"\x93NUMPY" + good_labels[6 : header_end - 20],
                },
            ),
            "'labels'",
        ),
        "bad crc compressed": (_central_crc_flipped(compressed, "logits.npy"), "Bad CRC-32"),
        "truncated compressed": (
            _zip(
                tmp / "tc.npz",
                {"logits.npy": good_logits[:-100], "labels.npy": good_labels},
                compressed=True,
            ),
            "truncated",
        ),
        "member not npy": (
            _zip(tmp / "raw.npz", {"logits": b"just some bytes", "labels.npy": good_labels}),
            "not a valid .npy array",
        ),
        "stored twice": (
            _zip(
                tmp / "twice.npz",
                {"logits": good_logits, "logits.npy": good_logits, "labels.npy": good_labels},
            ),
            "stored twice",
        ),
        "duplicate csv columns": (
            _text(tmp / "dup.csv", b"label,a,a\n0,0.5,0.5\n"),
            "repeated: 'a'",
        ),
        "duplicate label column": (
            _text(tmp / "dupl.csv", b"label,label,b\n0,0,1\n"),
            "repeated: 'label'",
        ),
        "non-utf8 csv": (_text(tmp / "latin.csv", b"label,\xe9t\xe9,b\n0,0.5,0.5\n"), "not UTF-8"),
    }


def _text(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


CASES = [
    "object labels",
    "object logits",
    "corrupt header",
    "corrupt labels header",
    "bad crc compressed",
    "truncated compressed",
    "member not npy",
    "stored twice",
    "duplicate csv columns",
    "duplicate label column",
    "non-utf8 csv",
]


@pytest.mark.parametrize("case", CASES)
def test_issue10_item14_bad_files_exit_2_naming_the_file(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    arrays: tuple[np.ndarray, np.ndarray],
    case: str,
) -> None:
    if case.endswith("csv") or "column" in case:
        pytest.importorskip("pyarrow")
    path, message = _cases(tmp_path, *arrays)[case]
    output = tmp_path / "report.html"
    err = _error(capsys, ["report", str(path), "--resamples", "5", "--output", str(output)])
    assert str(path) in err
    assert message in err, err
    assert not output.exists()


def test_issue10_item14_members_named_without_npy_are_read_as_np_load_does(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, arrays: tuple[np.ndarray, np.ndarray]
) -> None:
    logits, labels = arrays
    bare = _zip(tmp_path / "bare.npz", {"logits": _npy(logits), "labels": _npy(labels)})
    assert np.array_equal(np.load(bare)["logits"], logits)
    reference = tmp_path / "ref.npz"
    np.savez(reference, logits=logits, labels=labels)
    argv = ["--json", "--resamples", "5"]
    assert (
        _json(capsys, ["report", str(bare), *argv])["nll_nats"]
        == (_json(capsys, ["report", str(reference), *argv])["nll_nats"])
    )


# ---------------------------------------------------------------------------- item 15


def _hide(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Make ``import package`` (and its submodules) fail as if it were not installed."""
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, package, None)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_issue10_item15_missing_pyarrow_names_the_extra(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    suffix: str,
) -> None:
    path = _text(tmp_path / f"p{suffix}", b"label,a,b\n0,0.5,0.5\n")
    _hide(monkeypatch, "pyarrow")
    err = _error(capsys, ["report", str(path), "--json"])
    assert "needs pyarrow" in err
    assert "pip install 'crossent[cli]'" in err


def test_issue10_item15_missing_matplotlib_for_output_names_the_extra(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    npz_logits: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _hide(monkeypatch, "matplotlib")
    output = tmp_path / "r.html"
    err = _error(capsys, ["report", str(npz_logits), "--resamples", "5", "--output", str(output)])
    assert "--output" in err
    assert "needs matplotlib" in err
    assert "pip install 'crossent[cli]'" in err
    assert not output.exists()


def test_issue10_item15_plot_reliability_diagram_without_matplotlib(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logits, labels = make_predictions(n=50)
    diagram = crossent.reliability_diagram(logits, labels, form="logits", bins=5)
    _hide(monkeypatch, "matplotlib")
    with pytest.raises(
        crossent.MissingDependencyError, match=r"pip install 'crossent\[plot\]'"
    ) as info:
        crossent.plot_reliability_diagram(diagram)
    assert isinstance(info.value, ModuleNotFoundError)
    assert isinstance(info.value, crossent.CrossentError)


# ---------------------------------------------------------------------------- item 17


def _float32_table(tmp_path: Path) -> tuple[object, np.ndarray, np.ndarray]:
    pa = pytest.importorskip("pyarrow")
    logits, labels = make_predictions(n=60, classes=10)
    probs = softmax(logits).astype(np.float32)
    probs /= probs.sum(axis=1, keepdims=True)  # normalised in float32
    table = pa.table({"label": labels, **{f"c{k}": probs[:, k] for k in range(10)}})
    return table, probs, labels


def test_issue10_item17_float32_parquet_is_validated_in_float32(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    table, probs, labels = _float32_table(tmp_path)
    assert np.abs(probs.astype(np.float64).sum(axis=1) - 1).max() > 1e-12  # fails float64's
    parquet = tmp_path / "p.parquet"
    pq.write_table(table, parquet)
    npz = tmp_path / "p.npz"
    np.savez(npz, probs=probs, labels=labels)
    argv = ["--json", "--resamples", "5"]
    from_parquet = _json(capsys, ["report", str(parquet), *argv])
    from_npz = _json(capsys, ["report", str(npz), *argv])
    for key in ("nll_nats", "brier", "accuracy"):
        assert from_parquet[key] == from_npz[key], key


def test_issue10_item17_float32_csv_with_dtype_float32(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import pyarrow.csv as pc

    table, probs, labels = _float32_table(tmp_path)
    csv = tmp_path / "p.csv"
    pc.write_csv(table, csv)
    err = _error(capsys, ["report", str(csv), "--json", "--resamples", "5"])
    assert "pass --dtype float32" in err
    npz = tmp_path / "p.npz"
    np.savez(npz, probs=probs, labels=labels)
    argv = ["--json", "--resamples", "5"]
    from_csv = _json(capsys, ["report", str(csv), "--dtype", "float32", *argv])
    assert from_csv["nll_nats"] == _json(capsys, ["report", str(npz), *argv])["nll_nats"]
    err = _error(capsys, ["report", str(npz), "--dtype", "float32", *argv])
    assert "--dtype applies to CSV" in err


# ---------------------------------------------------------------------------- item 20


def test_issue10_item20_messages_offer_no_library_only_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, arrays: tuple[np.ndarray, np.ndarray]
) -> None:
    probs = softmax(arrays[0])
    probs[3] *= 1.2
    path = tmp_path / "p.npz"
    np.savez(path, probs=probs, labels=arrays[1])
    err = _error(capsys, ["report", str(path), "--json"])
    assert "row 3 sums to" in err
    assert "validate=False" not in err
    assert "`axis`" not in err
    # the library's fix was Python code and its own flag said twice: "normalise it first
    # (p / p.sum(axis, keepdims=True); --renormalize in the evaluation functions,
    # --renormalize in the CLI)"
    assert "keepdims" not in err, err
    assert err.count("--renormalize") == 1, err
    assert "normalise the rows first, or pass --renormalize (each row divided by its sum)" in err


@pytest.mark.parametrize("kind", ["npz", "csv"])
def test_issue10_item20_logits_errors_name_the_logits(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    arrays: tuple[np.ndarray, np.ndarray],
    kind: str,
) -> None:
    logits, labels = arrays
    logits = logits.copy()
    logits[3, 1] = np.nan
    if kind == "npz":
        path = tmp_path / "l.npz"
        np.savez(path, logits=logits, labels=labels)
        argv, name = ["report", str(path), "--json"], "`logits`"
    else:
        pytest.importorskip("pyarrow")
        path = _text(
            tmp_path / "l.csv",
            (
                "label,a,b,c,d\n"
                + "".join(
                    f"{y}," + ",".join(repr(float(v)) for v in row) + "\n"
                    for y, row in zip(labels, logits, strict=True)
                )
            ).encode(),
        )
        argv, name = ["report", str(path), "--logits", "--json"], "the predictions (logits)"
    err = _error(capsys, argv)
    assert "`probs`" not in err
    verb = "contains" if name.startswith("`") else "contain"  # "the predictions ... contain"
    assert f"{name} {verb} NaN" in err, err


def test_issue10_item20_a_fifo_is_not_called_empty(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import os

    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    fifo = tmp_path / "preds.csv"
    os.mkfifo(fifo)
    err = _error(capsys, ["report", str(fifo), "--json"])
    assert "is not a regular file" in err
    assert "empty" not in err


@pytest.mark.parametrize("flag", ["--max-ece", "--max-nll"])
@pytest.mark.parametrize("value", ["nan", "NaN", "-nan"])
def test_issue10_item20_nan_threshold_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], npz_logits: Path, flag: str, value: str
) -> None:
    assert main(["report", str(npz_logits), "--json", f"{flag}={value}"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "not NaN" in err


def test_issue10_item20_one_row_file_reports_without_a_gap(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "one.npz"
    np.savez(path, logits=np.array([[2.0, 0.0, -1.0]]), labels=np.array([0]))
    report = _json(capsys, ["report", str(path), "--json", "--resamples", "5"])
    assert report["n"] == 1
    assert report["recalibration_gap_nats"] is None
    expected = -(2.0 - np.log(np.exp(2.0) + 1.0 + np.exp(-1.0)))
    assert report["nll_nats"] == pytest.approx(expected, rel=1e-14)
    assert main(["report", str(path), "--resamples", "5"]) == 0
    assert "too few rows" in capsys.readouterr().out
