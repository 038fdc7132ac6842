"""Issue 13, a tenth hostile pass over the command line (branch hostilecli10).

* Labels of dtype ``timedelta64`` (an ``.npz``'s ``labels``, a ``--labels`` ``.npy``)
  passed the CLI's check, ``np.issubdtype(dtype, np.integer)``, which holds for
  ``timedelta64``; the library refused them in its own terms, without the file's name:
  "`labels` must be integer class ids; got dtype timedelta64[s]. Cast whole-number
  floats with labels.astype(int)".  Now "x.npz: 'labels' must be integers (class ids)
  or booleans; got dtype timedelta64[s]", as for a float or datetime array.
* A Parquet or Arrow file of float16 class columns was read as float32 and checked
  with float32's tolerance: probabilities 0.9, 0.1 (sum 0.99988 in float16) were
  refused (|error| 0.000122 > 6.15e-05) while the same array in an ``.npz`` gives a
  report.  It now gives the ``.npz``'s report.
* An Arrow file whose string columns are ``string_view`` (Polars' IPC files) had its
  string labels refused: "the 'label' column must hold integers ... it holds
  string_view"; they now name the classes as ``string`` labels do.
* ``crossent explain --hinge --logits 5 --label 0`` (one class) printed its first table
  and ended in "internal error (ValueError: zero-size array ...)", exit 3; it is now
  refused before any output, exit 2.  ``--logits 1e308,-1e308 --hinge`` printed
  NumPy's overflow warnings, then refused its own x2 scaling in the library's terms
  ("`logits` (logits) must not be +inf"), exit 2 after half the explanation; the
  scaling table now stops before the scale that overflows float64, and says so.
* ``--markdown`` wrote class names, paths and notes as Markdown: a class column named
  ``<!--`` opened an HTML comment that hid the rest of a CI summary or PR comment,
  ``[x](https://...)`` was a link; their markup characters are now escaped.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crossent.cli import main

_FAST = ["--resamples", "10"]
_PROBS = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
_LABELS = np.array([0, 1, 0, 0])


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- timedelta64 labels ------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["npz", "npy-labels", "npz-labels"])
def test_timedelta_labels_refused_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], layout: str
) -> None:
    labels = _LABELS.astype("m8[s]")
    if layout == "npz":
        source = tmp_path / "preds.npz"
        np.savez(source, probs=_PROBS, labels=labels)
        argv, named = [str(source)], source
    else:
        np.save(tmp_path / "preds.npy", _PROBS)
        named = tmp_path / ("labels.npy" if layout == "npy-labels" else "labels.npz")
        if layout == "npy-labels":
            np.save(named, labels)
        else:
            np.savez(named, labels=labels)
        argv = [str(tmp_path / "preds.npy"), "--labels", str(named)]
    code, out, err = _run(["report", *argv, "--json", *_FAST], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"crossent: error: {named}: "), err
    assert "integers (class ids) or booleans; got dtype timedelta64[s]" in err
    assert "astype" not in err
    assert err.count("\n") == 1


# --- Parquet and Arrow columns: float16, string_view -----------------------------------


def _table(path: Path, columns: dict[str, Any]) -> Path:
    pa = pytest.importorskip("pyarrow")
    table = pa.table(columns)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    else:
        import pyarrow.feather as feather

        feather.write_feather(table, path, compression="uncompressed")
    return path


def _report(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out, err = _run(["report", *argv, "--json", *_FAST], capsys)
    assert (code, err) == (0, ""), err
    return json.loads(out)


@pytest.mark.parametrize("suffix", [".parquet", ".arrow"])
def test_float16_columns_read_as_the_npz_reads_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    pa = pytest.importorskip("pyarrow")
    half = _PROBS.astype(np.float16)  # rows sum to 0.99988 in float16
    npz = tmp_path / "half.npz"
    np.savez(npz, probs=half, labels=_LABELS)
    table = _table(
        tmp_path / f"half{suffix}",
        {"label": pa.array(_LABELS), "a": pa.array(half[:, 0]), "b": pa.array(half[:, 1])},
    )
    expected = _report([str(npz)], capsys)
    got = _report([str(table)], capsys)
    for key in ("nll_nats", "brier", "accuracy", "mean_entropy_nats"):
        assert got[key] == expected[key], key
    # float16 beside float32: float32, as that .npz (not float16, which rounds 0.75002)
    wide = (1.0 - half[:, 0].astype(np.float64) + 2e-5).astype(np.float32)
    np.savez(npz, probs=np.stack([half[:, 0].astype(np.float32), wide], axis=1), labels=_LABELS)
    columns = {"label": pa.array(_LABELS), "a": pa.array(half[:, 0]), "b": pa.array(wide)}
    table = _table(tmp_path / f"mixed{suffix}", columns)
    expected, got = _report([str(npz)], capsys), _report([str(table)], capsys)
    assert (got["nll_nats"], got["brier"]) == (expected["nll_nats"], expected["brier"])


def test_string_view_labels_name_the_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pa = pytest.importorskip("pyarrow")
    if not hasattr(pa, "string_view"):
        pytest.skip("pyarrow < 16 has no string_view")
    names = ["a", "b", "a", "a"]
    columns = {"a": pa.array(_PROBS[:, 0]), "b": pa.array(_PROBS[:, 1])}
    plain = _table(tmp_path / "plain.arrow", {"label": pa.array(names), **columns})
    view = _table(
        tmp_path / "view.arrow",
        {
            "label": pa.array(names, pa.string_view()),
            "id": pa.array(["w", "x", "y", "z"], pa.string_view()),
            **columns,
        },
    )
    expected = _report([str(plain)], capsys)
    got = _report([str(view), "--id-column", "id"], capsys)
    assert (got["nll_nats"], got["accuracy"]) == (expected["nll_nats"], expected["accuracy"])
    assert {row["id"] for row in got["most_surprising"]} <= {"w", "x", "y", "z"}
    codes = pa.array([0, 1, 0, 0], pa.uint32())  # a Polars categorical: exit 3 on main
    categorical = pa.DictionaryArray.from_arrays(codes, pa.array(["a", "b"], pa.string_view()))
    got = _report([str(_table(tmp_path / "cat.arrow", {"label": categorical, **columns}))], capsys)
    assert (got["nll_nats"], got["accuracy"]) == (expected["nll_nats"], expected["accuracy"])
    labels_only = _table(tmp_path / "labels.arrow", {"label": pa.array(names, pa.string_view())})
    np.save(tmp_path / "preds.npy", _PROBS)
    code, _, err = _run(
        ["report", str(tmp_path / "preds.npy"), "--labels", str(labels_only), *_FAST], capsys
    )
    assert code == 2  # the strings name no class of a .npy ('0', '1')
    assert "holds string_view" not in err
    assert "which names none (class columns: '0', '1')" in err


def test_label_past_int64_in_a_later_batch_is_named_with_its_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from crossent.cli import _tables

    monkeypatch.setattr(_tables, "_CSV_BLOCK_BYTES", 1 << 10)  # several batches
    labels = ["0"] * 300
    labels[250] = "9223372036854775808"
    source = tmp_path / "preds.csv"
    source.write_text("label,a,b\n" + "".join(f"{y},0.9,0.1\n" for y in labels))
    code, out, err = _run(["report", str(source), "--json", *_FAST], capsys)
    assert (code, out) == (2, "")
    assert "it holds 9223372036854775808 in row 250, an integer past int64's range" in err


def test_binary_view_labels_as_binary_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``binary_view`` (Polars' bytes) is read as ``binary``: the same refusal, naming the
    type a label column of bytes is read as."""
    pa = pytest.importorskip("pyarrow")
    if not hasattr(pa, "binary_view"):
        pytest.skip("pyarrow < 16 has no binary_view")
    errors = []
    for kind in (pa.binary(), pa.binary_view()):
        labels = pa.array([b"a", b"b", b"a", b"a"], kind)
        columns = {"label": labels, "a": pa.array(_PROBS[:, 0]), "b": pa.array(_PROBS[:, 1])}
        source = _table(tmp_path / "preds.arrow", columns)
        code, out, err = _run(["report", str(source), *_FAST], capsys)
        assert (code, out) == (2, "")
        errors.append(err)
    assert errors[1] == errors[0]
    assert errors[0].endswith("it holds binary\n")


# --- explain --hinge -----------------------------------------------------------------------


def test_hinge_of_one_logit_refused_before_any_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["explain", "--hinge", "--logits", "5", "--label", "0"], capsys)
    assert (code, out) == (2, "")
    assert err == (
        "crossent: error: --hinge needs at least two logits (the margin is the true class's "
        "logit minus the largest other one); got 1\n"
    )


@pytest.mark.parametrize("label", ["0", "1"])
def test_hinge_of_logits_near_the_range_stops_before_overflow(
    capsys: pytest.CaptureFixture[str], label: str
) -> None:
    argv = ["explain", "--hinge", "--logits=1e308,-1e308", "--label", label]
    with np.errstate(all="raise"):  # a leaked overflow would raise here
        code, out, err = _run(argv, capsys)
    assert (code, err) == (0, ""), err
    assert "From x2 on, the scaled logits are beyond float64's largest number" in out
    scale_rows = [line for line in out.splitlines() if line.startswith("│     ")]
    assert [row.split()[1] for row in scale_rows[-1:]] == ["1"]  # x1 shown, x2 not


# --- --markdown: names written as text ------------------------------------------------------


def test_markdown_names_are_text_not_markup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "preds.csv"
    header = "label,<!--,[x](https://e.test),*b*,`c`,_d_,~~e~~"
    source.write_text(f"{header}\n0,0.5,0.2,0.1,0.1,0.05,0.05\n1,0.2,0.5,0.1,0.1,0.05,0.05\n")
    code, out, err = _run(["report", str(source), "--markdown", *_FAST], capsys)
    assert (code, err) == (0, "")
    assert not re.search(r"(?<!\\)(<!--|\[x\]\(|\*b\*|`c`|_d_|~~e)", out), out
    names = r"'\<!--', '\[x\](https://e.test)', '\*b\*', '\`c\`', '\_d\_', '\~\~e\~\~'"
    assert f"({names})" in out
    # a backslash before punctuation is escaped (it would escape the '!'); before a
    # letter it is itself, as written (Markdown reads it so)
    slashed = tmp_path / "slashed.csv"
    slashed.write_text("label,f\\!,g\\h\n0,0.6,0.4\n1,0.3,0.7\n")
    code, out, err = _run(["report", str(slashed), "--markdown", *_FAST], capsys)
    assert (code, err) == (0, "")
    assert r"2 class columns ('f\\!', 'g\h')." in out
    other = tmp_path / "b|<!--.csv"
    other.write_bytes(source.read_bytes())
    code, out, err = _run(["report", str(source), str(other), "--markdown", *_FAST], capsys)
    assert (code, err) == (0, "")
    rows = [line for line in out.splitlines() if line.startswith("| ") and "b\\|" in line]
    assert rows, out
    assert all("b\\|\\<!--.csv |" in line for line in rows), out


# --- a file name that is not UTF-8 -------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".arrow", "-legacy.arrow"])
def test_a_table_named_in_another_encoding_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    """The byte 0xff in a table's name (a Latin-1 name, Python's surrogate U+DCFF): pyarrow
    encodes names as UTF-8 strictly, so the report was "internal error
    (UnicodeEncodeError ...)", exit 3."""
    pa = pytest.importorskip("pyarrow")
    columns = {"label": pa.array(_LABELS), "a": pa.array(_PROBS[:, 0]), "b": pa.array(_PROBS[:, 1])}
    plain = tmp_path / f"plain{suffix}"
    if suffix == ".csv":
        rows = "".join(
            f"{y},{p[0]},{p[1]}\n" for y, p in zip(_LABELS.tolist(), _PROBS.tolist(), strict=True)
        )
        plain.write_text("label,a,b\n" + rows)
    elif suffix.endswith(".arrow"):  # an IPC stream: read after the file format is refused
        import pyarrow.ipc as ipc

        table = pa.table(columns)
        # a legacy stream (no continuation marker) is read from its first byte only
        options = ipc.IpcWriteOptions(use_legacy_format=suffix.startswith("-legacy"))
        with ipc.new_stream(str(plain), table.schema, options=options) as writer:
            writer.write_table(table)
    else:
        _table(plain, columns)
    named = tmp_path / f"caf\udcff{suffix}"
    named.write_bytes(plain.read_bytes())
    expected = _report([str(plain)], capsys)
    got = _report([str(named)], capsys)
    # (leftovers11: the byte as the text \xff, no lone surrogate in the JSON)
    assert got["source"] == str(named).replace("\udcff", "\\xff")
    assert (got["nll_nats"], got["brier"]) == (expected["nll_nats"], expected["brier"])


def test_json_of_a_name_in_another_encoding_is_valid_unicode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """leftovers11: the JSON wrote the name's byte 0xff as the escape "\\udcff", a lone
    surrogate that strict JSON readers refuse (jq printed U+FFFD, JavaScript's string is
    not well formed). Now the text ``\\xff`` (Python's backslashreplace), in a report and
    in a comparison's names; every string of the JSON encodes as UTF-8."""
    rows = "".join(
        f"{y},{p[0]},{p[1]}\n" for y, p in zip(_LABELS.tolist(), _PROBS.tolist(), strict=True)
    )
    named = tmp_path / "caf\udcff.csv"
    named.write_bytes(("label,a,b\n" + rows).encode())
    plain = tmp_path / "plain.csv"
    plain.write_bytes(named.read_bytes())
    shown = str(named).replace("\udcff", "\\xff")
    for argv in ([str(named)], [str(named), str(plain)]):
        code, out, err = _run(["report", *argv, "--json", *_FAST], capsys)
        assert (code, err) == (0, ""), err
        assert "\\ud" not in out
        payload = json.loads(out)
        json.dumps(payload, ensure_ascii=False).encode("utf-8")  # strict: no surrogate
        if len(argv) == 1:
            assert payload["source"] == shown
        else:
            assert [m["name"] for m in payload["models"]] == [shown, str(plain)]


# --- --class-columns with an unclosed double quote ------------------------------------------


@pytest.mark.parametrize("typed", ['"a', '"a,b', '"a"b,c'])
def test_class_columns_unclosed_quote_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], typed: str
) -> None:
    """Read leniently, ``"a`` named the column ``a`` (and ``"a,b`` the one column
    ``a,b``): a report on columns other than typed, exit 0."""
    source = tmp_path / "preds.csv"
    source.write_text('label,a,b,"a,b"\n0,0.7,0.2,0.1\n1,0.2,0.7,0.1\n')
    code, out, err = _run(["report", str(source), "--class-columns", typed, *_FAST], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"crossent: error: --class-columns: the double quotes of {typed!r} ")
    assert err.count("\n") == 1


# --- a nested tensor in a .pt --------------------------------------------------------------


def test_nested_tensor_is_named_not_its_dtype(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A nested (ragged) float32 tensor was refused as "has dtype torch.float32, which
    cannot be read", blaming a dtype NumPy reads."""
    torch = pytest.importorskip("torch")
    rows = [torch.tensor(row, dtype=torch.float32) for row in _PROBS[:2].tolist()]
    with warnings.catch_warnings():  # torch's "prototype stage" warning, at creation
        warnings.simplefilter("ignore")
        nested = torch.nested.nested_tensor(rows)
    source = tmp_path / "preds.pt"
    torch.save({"probs": nested, "labels": torch.tensor([0, 1])}, source)
    code, out, err = _run(["report", str(source), *_FAST], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"crossent: error: {source}: 'probs' is a nested (ragged) tensor;")
    assert "dtype" not in err


# --- a CSV label past int64 ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cells", "row"),
    [
        (["99999999999999999999999", "0"], 0),
        (["0", "-99999999999999999999999"], 1),
        (["9223372036854775808", "0"], 0),  # 2**63, the first past int64
        (["-9223372036854775808", "9223372036854775808"], 1),  # -2**63 is an int64
    ],
    ids=["1e23", "-1e23", "2^63", "-2^63-and-2^63"],
)
def test_label_past_int64_is_named_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cells: list[str], row: int
) -> None:
    """It was "it holds floating-point numbers (row 0 is read as 1e+23); write the class
    ids as integers (1, not 1.0)", of a cell written as an integer."""
    cell = cells[row]
    source = tmp_path / "preds.csv"
    source.write_text(f"label,a,b\n{cells[0]},0.9,0.1\n{cells[1]},0.2,0.8\n")
    code, out, err = _run(["report", str(source), "--json", *_FAST], capsys)
    assert (code, out) == (2, "")
    assert err == (
        f"crossent: error: {source}: the 'label' column must hold integers (class ids), "
        f"booleans, or the names of the class columns; it holds {cell} in row {row}, an "
        "integer past int64's range, which no class id is\n"
    )


# --- a Feather V1 file -----------------------------------------------------------------------


def test_feather_v1_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It was "cannot be parsed (Expected to read 826361158 metadata bytes, but only read
    348)": its magic ``FEA1`` read as an IPC stream's length."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.feather as feather

    source = tmp_path / "preds.feather"
    table = pa.table({"label": _LABELS, "a": _PROBS[:, 0], "b": _PROBS[:, 1]})
    with warnings.catch_warnings():  # pyarrow's own deprecation of the format, at writing
        warnings.simplefilter("ignore")
        feather.write_feather(table, str(source), version=1)
    code, out, err = _run(["report", str(source), *_FAST], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"crossent: error: {source}: is a Feather V1 file, which pyarrow ")
    assert err.count("\n") == 1
