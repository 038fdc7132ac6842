"""Issue 14: tables with named columns, one-column binary tables, .safetensors, Arrow IPC /
Feather, and CSV on standard input."""

from __future__ import annotations

import io
import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from crossent.cli import main

pytest.importorskip("rich")
pa = pytest.importorskip("pyarrow")

_METRICS = ("n", "classes", "accuracy", "nll_nats", "brier", "spherical", "mean_entropy_nats")


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    code, out, err = _run(capsys, [*argv, "--json", "--resamples", "20"])
    assert code == 0, err
    return json.loads(out)


def _same_metrics(a: dict, b: dict) -> None:
    for key in _METRICS:
        assert a[key] == pytest.approx(b[key], rel=1e-12), key
    assert a["ece"]["value"] == pytest.approx(b["ece"]["value"], abs=1e-12)


def _logits(n: int = 200, classes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 2
    labels = np.argmax(logits + rng.gumbel(size=(n, classes)), axis=1)
    return logits, labels


def _csv(path: Path, columns: dict[str, object]) -> Path:
    names = list(columns)
    rows = zip(*(np.asarray(columns[c]).tolist() for c in names), strict=True)
    path.write_text(",".join(names) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def _class_columns(logits: np.ndarray) -> dict[str, object]:
    return {f"c{k}": logits[:, k] for k in range(logits.shape[1])}


def test_issue14_id_column_gives_the_metrics_of_the_file_without_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logits, labels = _logits()
    plain = _csv(tmp_path / "plain.csv", {"label": labels, **_class_columns(logits)})
    ids = np.arange(len(labels)) * 7 + 1000
    with_id = _csv(tmp_path / "ids.csv", {"id": ids, "label": labels, **_class_columns(logits)})
    expected = _json(capsys, ["report", str(plain), "--logits"])
    got = _json(capsys, ["report", str(with_id), "--logits", "--id-column", "id"])
    _same_metrics(got, expected)
    assert got["columns"] == {
        "label": "label",
        "id": "id",
        "classes": [f"c{k}" for k in range(10)],
        "ignored": [],
    }
    for row in got["most_surprising"]:
        assert row["id"] == int(ids[row["index"]])
    # the reported bug: without --id-column a numeric id was read as an 11th class (exit 0,
    # wrong numbers); a column of integers, a different one in every row, is now refused
    # with the fix, and read as a class only when --class-columns lists it
    code, out, err = _run(capsys, ["report", str(with_id), "--logits", "--resamples", "20"])
    assert (code, out) == (2, "")
    assert err.startswith(f"crossent: error: {with_id}: the first column, 'id', holds integers")
    assert "pass --id-column id if it identifies rows" in err
    classes = ",".join(["id", *(f"c{k}" for k in range(10))])
    listed = _json(capsys, ["report", str(with_id), "--logits", "--class-columns", classes])
    assert listed["classes"] == 11
    assert listed["columns"]["classes"][0] == "id"


def test_issue14_non_numeric_extra_column_is_an_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logits, labels = _logits(n=20)
    names = [f"img{i}.png" for i in range(20)]
    path = _csv(tmp_path / "t.csv", {"file": names, "label": labels, **_class_columns(logits)})
    code, _, err = _run(capsys, ["report", str(path), "--logits"])
    assert code == 2
    assert "column 'file' must be numeric to be a class" in err
    assert "--id-column" in err
    d = _json(capsys, ["report", str(path), "--logits", "--id-column", "file"])
    assert d["most_surprising"][0]["id"] == names[d["most_surprising"][0]["index"]]


def test_issue14_label_and_class_columns_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logits, labels = _logits(classes=3)
    plain = _csv(tmp_path / "plain.csv", {"label": labels, **_class_columns(logits)})
    renamed = _csv(
        tmp_path / "renamed.csv",
        {
            "c2": logits[:, 2],
            "extra": logits[:, 0] * 0,
            "target": labels,
            "c0": logits[:, 0],
            "c1": logits[:, 1],
        },
    )
    argv = ["report", str(renamed), "--logits", "--label-column", "target"]
    code, _, err = _run(capsys, ["report", str(renamed), "--logits"])
    assert code == 2
    assert "no 'label' column" in err
    assert "--label-column" in err
    got = _json(capsys, [*argv, "--class-columns", "c0,c1,c2"])
    _same_metrics(got, _json(capsys, ["report", str(plain), "--logits"]))
    assert got["columns"]["ignored"] == ["extra"]
    assert [row["name"] for row in got["per_class"]] == ["c0", "c1", "c2"]
    code, _, err = _run(capsys, [*argv, "--class-columns", "c0,nope"])
    assert code == 2
    assert "'nope'" in err


def test_issue14_one_column_binary_table_equals_the_two_column_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0.01, 0.99, size=300)
    labels = (rng.uniform(size=300) < p**1.3).astype(np.int64)
    one = _csv(tmp_path / "one.csv", {"label": labels, "p_spam": p})
    two = _csv(tmp_path / "two.csv", {"label": labels, "ham": 1 - p, "spam": p})
    got = _json(capsys, ["report", str(one)])
    want = _json(capsys, ["report", str(two), "--scope", "positive-class"])
    _same_metrics(got, want)
    assert got["binary"] is True
    assert got["classes"] == 2
    assert got["ece"]["scope"] == "positive-class"
    code, out, _ = _run(capsys, ["report", str(one), "--resamples", "20"])
    assert code == 0
    assert "positive-class" in out


def _safetensors(path: Path, tensors: dict[str, np.ndarray], kinds: dict[str, str]) -> Path:
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        data = array.tobytes()
        header[name] = {
            "dtype": kinds[name],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return path


def test_issue14_safetensors_read_like_npz(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logits, labels = _logits()
    npz = tmp_path / "m.npz"
    np.savez(npz, logits=logits.astype(np.float32), labels=labels)
    st = _safetensors(
        tmp_path / "m.safetensors",
        {"logits": logits.astype(np.float32), "labels": labels.astype(np.int64)},
        {"logits": "F32", "labels": "I64"},
    )
    got = _json(capsys, ["report", str(st)])
    _same_metrics(got, _json(capsys, ["report", str(npz)]))
    assert got["form"] == "logits"
    # bfloat16 (no NumPy dtype): the bits widened to float32
    bits = (logits.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    bf16 = _safetensors(
        tmp_path / "bf16.safetensors",
        {"logits": bits, "labels": labels.astype(np.int32)},
        {"logits": "BF16", "labels": "I32"},
    )
    widened = (bits.astype(np.uint32) << 16).view(np.float32)
    np.savez(npz, logits=widened, labels=labels)
    _same_metrics(_json(capsys, ["report", str(bf16)]), _json(capsys, ["report", str(npz)]))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x05\x00", "shorter than 8 bytes"),
        (struct.pack("<Q", 1 << 40) + b"{}", "does not fit"),
        (struct.pack("<Q", 3) + b"{x}", "header is not JSON"),
        (struct.pack("<Q", 2) + b"{}", "no tensor named 'labels'"),
    ],
)
def test_issue14_malformed_safetensors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], payload: bytes, message: str
) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(payload)
    code, _, err = _run(capsys, ["report", str(path)])
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_issue14_safetensors_offsets_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logits, labels = _logits(n=10)
    path = _safetensors(
        tmp_path / "t.safetensors",
        {"logits": logits, "labels": labels.astype(np.int64)},
        {"logits": "F64", "labels": "I64"},
    )
    data = path.read_bytes()
    path.write_bytes(data[:-40])  # truncated
    code, _, err = _run(capsys, ["report", str(path)])
    assert code == 2
    assert "runs past the end of the file" in err


def test_issue14_arrow_ipc_and_feather_read_like_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow.feather as feather
    import pyarrow.ipc as ipc

    logits, labels = _logits()
    columns = {"label": labels, **_class_columns(logits)}
    csv = _csv(tmp_path / "t.csv", columns)
    table = pa.table({k: np.asarray(v) for k, v in columns.items()})
    feather.write_feather(table, tmp_path / "t.feather")
    with (
        pa.OSFile(str(tmp_path / "t.arrow"), "wb") as sink,
        ipc.new_stream(sink, table.schema) as writer,
    ):
        writer.write_table(table, max_chunksize=64)
    want = _json(capsys, ["report", str(csv), "--logits"])
    for name in ("t.feather", "t.arrow"):
        _same_metrics(_json(capsys, ["report", str(tmp_path / name), "--logits"]), want)


def test_issue14_csv_on_standard_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    logits, labels = _logits()
    csv = _csv(tmp_path / "t.csv", {"label": labels, **_class_columns(logits)})

    class _Stdin(io.TextIOWrapper):
        pass

    monkeypatch.setattr(sys, "stdin", _Stdin(io.BytesIO(csv.read_bytes())))
    got = _json(capsys, ["report", "-", "--logits"])
    _same_metrics(got, _json(capsys, ["report", str(csv), "--logits"]))
    assert got["source"] == "standard input (CSV)"
