"""`crossent report` on model outputs that main refused or misread.

* a ``.pt`` holding the pair ``torch.save((logits, labels), path)`` (a tuple or a list);
* ``--labels`` pointing to an ``.npz`` or a ``.safetensors`` (the array named ``labels``,
  or the file's only array), or to a ``.pt`` dict whose only tensor is not named
  ``labels``;
* a CSV whose first column is a pandas index: ``Unnamed: 0`` holding the row numbers
  (``pd.read_csv(f).to_csv(g, index=False)``) is the row ids; a named index, or an
  ``Unnamed: 0`` of other values, is refused with the fix (main read both as a class,
  exit 0, with a note on stderr).

Each accepted input gives the JSON report of the ``.npz`` (or CSV) holding the same
arrays; each refusal is exit 2, one line naming the file (and the arrays it holds when
the choice is ambiguous), no traceback and no output file.  Every test here fails on
main.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossent.cli import main

from .conftest import make_predictions

pytest.importorskip("rich")


def _report(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    code = main(["report", *argv, "--json", "--resamples", "40"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""
    report = json.loads(out)
    report.pop("source")
    return report


def _same(capsys: pytest.CaptureFixture[str], argv: list[str], reference: list[str]) -> None:
    assert _report(capsys, argv) == _report(capsys, reference)


def _error(capsys: pytest.CaptureFixture[str], argv: list[str], output: Path) -> str:
    """Exit 2, one line naming a file, no traceback, and no ``output`` written."""
    code = main(["report", *argv, "--resamples", "3", "--output", str(output)])
    _out, err = capsys.readouterr()
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("crossent: error: ")
    assert not output.exists()
    return err


def _safetensors(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    """A ``.safetensors`` file written from the format's specification (8-byte header
    length, JSON header, little-endian data), independently of the reader."""
    kinds = {"float32": "F32", "float64": "F64", "int64": "I64", "int32": "I32", "uint8": "U8"}
    header: dict[str, Any] = {"__metadata__": {"format": "np"}}
    blobs, offset = [], 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": kinds[array.dtype.name],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return path


@pytest.fixture
def arrays() -> tuple[np.ndarray, np.ndarray]:
    logits, labels = make_predictions(n=240, classes=4, seed=17)
    return logits.astype(np.float32), labels


@pytest.fixture
def torch() -> Any:
    return pytest.importorskip("torch")


# --- a .pt pair (predictions, labels) ----------------------------------------------------


@pytest.mark.parametrize("container", [tuple, list])
def test_pt_pair_of_logits_and_labels_equals_the_npz(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    arrays: Any,
    torch: Any,
    container: type,
) -> None:
    logits, labels = arrays
    np.savez(tmp_path / "ref.npz", logits=logits, labels=labels)
    torch.save(container([torch.from_numpy(logits), torch.from_numpy(labels)]), tmp_path / "p.pt")
    _same(capsys, [str(tmp_path / "p.pt"), "--logits"], [str(tmp_path / "ref.npz")])


def test_pt_pair_of_log_probs_and_boolean_labels_equals_the_npz(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], torch: Any
) -> None:
    logits, labels = make_predictions(n=200, classes=2, seed=3)
    log_probs = torch.log_softmax(torch.from_numpy(logits), dim=1)
    np.savez(tmp_path / "ref.npz", log_probs=log_probs.numpy(), labels=labels)
    pair = (log_probs, torch.from_numpy(labels).to(torch.bool))
    torch.save(pair, tmp_path / "p.pth", _use_new_zipfile_serialization=False)  # legacy format
    _same(capsys, [str(tmp_path / "p.pth"), "--log-probs"], [str(tmp_path / "ref.npz")])


def test_pt_pairs_that_are_not_pairs_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arrays: Any, torch: Any
) -> None:
    logits, labels = (torch.from_numpy(a) for a in arrays)
    output = tmp_path / "out.html"
    cases = {
        # a list of two per-batch outputs: the order is the rule, nothing is guessed
        "batches": ([logits[:100], logits[100:]], "second item has dtype float32"),
        "swapped": ((labels, logits), "second item has dtype float32"),
        "three": ((logits, labels, labels), "holds a tuple of 3 items"),
        "one": ([logits], "holds a list of 1 item;"),
        "dict item": ((logits, {"labels": labels}), "second item (the labels) must be a tensor"),
        "2-D labels": ((logits, labels.reshape(-1, 2)), "one-dimensional"),
        "short labels": ((logits, labels[:-1]), "239 labels for the 240 rows"),
    }
    for name, (saved, phrase) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.pt"
        torch.save(saved, path)
        err = _error(capsys, [str(path), "--logits"], output)
        assert err.startswith(f"crossent: error: {path}: "), name
        assert phrase in err, (name, err)
    np.save(tmp_path / "y.npy", arrays[1])
    torch.save((logits, labels), tmp_path / "pair.pt")
    err = _error(
        capsys, [str(tmp_path / "pair.pt"), "--logits", "--labels", str(tmp_path / "y.npy")], output
    )
    assert "holds its own labels" in err
    assert "second source of labels" in err


# --- --labels FILE.npz / .safetensors / a .pt dict ---------------------------------------


def test_labels_from_npz_safetensors_and_pt_dicts_equal_the_npz(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arrays: Any, torch: Any
) -> None:
    logits, labels = arrays
    np.savez(tmp_path / "ref.npz", logits=logits, labels=labels)
    np.save(tmp_path / "z.npy", logits)
    reference = [str(tmp_path / "ref.npz")]
    label_files = {
        "only.npz": lambda p: np.savez(p, y=labels),
        "named.npz": lambda p: np.savez_compressed(p, labels=labels, logits=logits),
        "only.safetensors": lambda p: _safetensors(p, {"targets": labels.astype(np.int32)}),
        "named.safetensors": lambda p: _safetensors(p, {"logits": logits, "labels": labels}),
        # a dict's only tensor (an epoch number is not an array)
        "only.pt": lambda p: torch.save({"targets": torch.from_numpy(labels), "epoch": 3}, p),
    }
    for name, write in label_files.items():
        write(tmp_path / name)
        argv = [str(tmp_path / "z.npy"), "--logits", "--labels", str(tmp_path / name)]
        _same(capsys, argv, reference)


def test_labels_file_that_names_no_labels_is_refused_listing_its_arrays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arrays: Any, torch: Any
) -> None:
    logits, labels = arrays
    np.save(tmp_path / "z.npy", logits)
    output = tmp_path / "out.html"
    np.savez(tmp_path / "two.npz", y_true=labels, y_pred=labels)
    _safetensors(tmp_path / "two.safetensors", {"y": labels, "logits": logits})
    torch.save({"y": torch.from_numpy(labels), "z": torch.from_numpy(logits)}, tmp_path / "two.pt")
    np.savez(tmp_path / "empty.npz")
    np.savez(tmp_path / "float.npz", labels=labels.astype(np.float64))
    _safetensors(tmp_path / "short.safetensors", {"labels": labels[:-2]})
    np.save(tmp_path / "obj.npy", np.array([1, None], dtype=object), allow_pickle=True)
    import zipfile

    with zipfile.ZipFile(tmp_path / "obj.npz", "w") as archive:
        archive.write(tmp_path / "obj.npy", "labels.npy")
    cases = {
        "two.npz": "holds 2 arrays ('y_pred', 'y_true') and none named 'labels'",
        "two.safetensors": "holds 2 tensors ('logits', 'y') and none named 'labels'",
        "two.pt": "holds 2 tensors ('y', 'z') and none named 'labels'",
        "empty.npz": "holds no arrays",
        "float.npz": "must be integers (class ids) or booleans; got dtype float64",
        "short.safetensors": "238 labels for the 240 rows",
        "obj.npz": "never unpickles",
    }
    for name, phrase in cases.items():
        path = tmp_path / name
        err = _error(capsys, [str(tmp_path / "z.npy"), "--logits", "--labels", str(path)], output)
        assert err.startswith(f"crossent: error: {path}: "), (name, err)
        assert phrase in err, (name, err)


# --- a CSV's pandas index ----------------------------------------------------------------


def _frame(pd: Any, arrays: Any) -> Any:
    logits, labels = arrays
    frame = pd.DataFrame(logits.astype(np.float64), columns=[f"c{k}" for k in range(4)])
    frame["label"] = labels
    return frame


def test_unnamed_0_holding_the_row_numbers_is_the_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arrays: Any
) -> None:
    """``df.to_csv(a); pd.read_csv(a).to_csv(b, index=False)``: the first column is
    ``Unnamed: 0`` holding 0..n-1, the index; main read it as a fifth class."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = _frame(pd, arrays)
    frame.to_csv(tmp_path / "a.csv")
    pd.read_csv(tmp_path / "a.csv").to_csv(tmp_path / "b.csv", index=False)
    frame.to_csv(tmp_path / "plain.csv", index=False)
    assert (tmp_path / "b.csv").read_text().startswith("Unnamed: 0,c0,")
    got = _report(capsys, [str(tmp_path / "b.csv"), "--logits"])
    want = _report(capsys, [str(tmp_path / "plain.csv"), "--logits"])
    assert got["columns"] == {**want["columns"], "id": "Unnamed: 0"}
    for report in (got, want):
        report.pop("columns")
        for row in report["most_surprising"]:
            assert row.pop("id", row["index"]) == row["index"]
    assert got == want


def test_unnamed_0_of_other_values_is_refused_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arrays: Any
) -> None:
    """A filtered or shuffled frame's index is not the row numbers: refused, naming the
    first row that differs, until --id-column or --class-columns says what it is."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = _frame(pd, arrays)
    frame.iloc[::2].to_csv(tmp_path / "a.csv")  # index 0, 2, 4, ...
    pd.read_csv(tmp_path / "a.csv").to_csv(tmp_path / "b.csv", index=False)
    path = tmp_path / "b.csv"
    err = _error(capsys, [str(path), "--logits"], tmp_path / "out.html")
    assert err.startswith(f"crossent: error: {path}: the first column, 'Unnamed: 0'")
    assert "row 1 has 2: pass --id-column 'Unnamed: 0' if it identifies rows" in err
    got = _report(capsys, [str(path), "--logits", "--id-column", "Unnamed: 0"])
    assert [row["id"] for row in got["most_surprising"]] == [
        2 * row["index"] for row in got["most_surprising"]
    ]
    listed = _report(capsys, [str(path), "--logits", "--class-columns", "c0,c1,c2,c3"])
    assert listed["columns"]["ignored"] == ["Unnamed: 0"]
    assert listed["nll_nats"] == got["nll_nats"]


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    name=st.sampled_from(["", "Unnamed: 0", "id", "row"]),
    values=st.sampled_from(["range", "shifted", "permuted", "repeated"]),
    rows=st.integers(3, 40),
    position=st.sampled_from(["first", "last"]),
)
def test_fuzzed_index_columns_are_the_index_only_when_unambiguous(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    values: str,
    rows: int,
    position: str,
) -> None:
    """A CSV with an integer column beside the logits: it is the row ids without any
    option only when it is unambiguously a pandas index (the unnamed first column, or a
    first ``Unnamed: 0`` holding 0..n-1), then with the metrics of the file without it;
    a column of repeated integers is a class, unless it is a first ``Unnamed: 0`` (a
    pandas index, or not: the user's to say); every other case is exit 2 naming it."""
    pytest.importorskip("pyarrow")
    if name == "" and position == "last":
        name = "Unnamed: 0"  # pandas writes an unnamed index first only
    logits, labels = make_predictions(n=rows, classes=3, seed=rows)
    column = {
        "range": np.arange(rows),
        "shifted": np.arange(rows) + 1,
        "permuted": np.random.default_rng(rows).permutation(rows),
        "repeated": np.arange(rows) % 2,
    }[values]
    if values == "permuted" and np.array_equal(column, np.arange(rows)):
        column = column[::-1].copy()
    header = ["c0", "c1", "c2", "label"]
    cells = [[*(repr(float(v)) for v in z), str(y)] for z, y in zip(logits, labels, strict=True)]
    plain = tmp_path / "plain.csv"
    plain.write_text("\n".join(",".join(line) for line in [header, *cells]) + "\n")
    if position == "first":
        header, cells = [name, *header], [[str(v), *c] for v, c in zip(column, cells, strict=True)]
    else:
        header, cells = [*header, name], [[*c, str(v)] for v, c in zip(column, cells, strict=True)]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(",".join(line) for line in [header, *cells]) + "\n")
    output = tmp_path / "out.html"
    output.unlink(missing_ok=True)
    unnamed_first = position == "first" and name == "Unnamed: 0"
    if position == "first" and (name == "" or (unnamed_first and values == "range")):
        got = _report(capsys, [str(path), "--logits"])
        want = _report(capsys, [str(plain), "--logits"])
        assert got["columns"]["id"] == name
        assert got["classes"] == 3
        assert got["nll_nats"] == want["nll_nats"]
    elif values == "repeated" and not unnamed_first:
        got = _report(capsys, [str(path), "--logits"])
        assert got["classes"] == 4
    else:
        err = _error(capsys, [str(path), "--logits"], output)
        assert err.startswith(f"crossent: error: {path}: "), err
        assert f"{name!r}" in err
        assert "--id-column" in err


def test_unnamed_0_is_checked_in_every_batch(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    arrays: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Parquet is read 7 rows a batch here: the row numbers continue across batches, and
    the first wrong one is named by its row in the file."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    import crossent.cli._tables as tables

    monkeypatch.setattr(tables, "_BATCH_ROWS", 7)
    frame = _frame(pd, arrays)
    frame.to_parquet(tmp_path / "plain.parquet", index=False)
    frame.insert(0, "Unnamed: 0", np.arange(len(frame)))
    frame.to_parquet(tmp_path / "b.parquet", index=False)
    got = _report(capsys, [str(tmp_path / "b.parquet"), "--logits"])
    want = _report(capsys, [str(tmp_path / "plain.parquet"), "--logits"])
    assert got["columns"]["id"] == "Unnamed: 0"
    assert got["nll_nats"] == want["nll_nats"]
    frame.loc[23, "Unnamed: 0"] = 999
    frame.to_parquet(tmp_path / "c.parquet", index=False)
    err = _error(capsys, [str(tmp_path / "c.parquet"), "--logits"], tmp_path / "out.html")
    assert "row 23 has 999" in err
