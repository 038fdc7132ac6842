"""`crossent report` on model outputs as people save them: a ``.npy`` of predictions with
``--labels FILE``, a ``.pt``/``.pth`` written by ``torch.save`` (a tensor, or a dict of
tensors), and a CSV whose named index (``df.index.name = "id"; df.to_csv(path)``) was
read as a class (now refused with the fix).

Each reader is checked against the ``.npz`` (or CSV) holding the same arrays: the same
JSON report, number for number.  Bad files exit 2 with one line naming the file, never
a traceback or an output file; damaged files are fuzzed with hypothesis.  On main the
``.npy``/``.pt`` suffixes were unknown formats, ``--labels`` an unknown option, and the
named index a silent eleventh class.
"""

from __future__ import annotations

import functools
import json
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crossent.cli
from crossent.cli import main

from .conftest import make_predictions, softmax

pytest.importorskip("rich")


def _report(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[dict[str, Any], str]:
    code = main([*argv, "--json", "--resamples", "40"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    report.pop("source")
    return report, err


def _same(capsys: pytest.CaptureFixture[str], argv: list[str], reference: list[str]) -> None:
    got, _ = _report(capsys, argv)
    want, _ = _report(capsys, reference)
    assert got == want


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    _out, err = capsys.readouterr()
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("crossent: error: ")
    return err


@pytest.fixture
def arrays() -> tuple[np.ndarray, np.ndarray]:
    logits, labels = make_predictions(n=300, classes=5, seed=11)
    return logits.astype(np.float32), labels


_TARGET = ["--label-column", "target"]


def _labels(folder: Path, column: str) -> list[str]:
    return [str(folder / "y.parquet"), "--label-column", column]


# --- .npy --------------------------------------------------------------------------------


@pytest.mark.parametrize("fortran", [False, True])
def test_npy_logits_with_npy_labels_equal_the_npz(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arrays: Any, fortran: bool
) -> None:
    logits, labels = arrays
    np.savez(tmp_path / "ref.npz", logits=logits, labels=labels)
    np.save(tmp_path / "z.npy", np.asfortranarray(logits) if fortran else logits)
    np.save(tmp_path / "y.npy", labels)
    _same(
        capsys,
        ["report", str(tmp_path / "z.npy"), "--logits", "--labels", str(tmp_path / "y.npy")],
        ["report", str(tmp_path / "ref.npz")],
    )


@pytest.mark.parametrize("bound", [None, 0], ids=["in-memory", "scratch-copy"])
def test_npy_is_read_only_and_not_mapped_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arrays: Any, bound: int | None
) -> None:
    """Copied out of the file (a map of it ended in SIGBUS when the file was truncated
    while read): into memory, or past the bound into a map of an unnamed scratch file."""
    from crossent.cli._npy import open_npy

    if bound is not None:
        monkeypatch.setattr("crossent.cli._copied.IN_MEMORY_BYTES", bound)
    np.save(tmp_path / "z.npy", arrays[0])
    dataset = open_npy(tmp_path / "z.npy", "logits")
    assert isinstance(dataset.values, np.memmap) == (bound is not None)
    assert getattr(dataset.values, "filename", None) is None
    assert not dataset.values.flags.writeable
    np.testing.assert_array_equal(dataset.values, arrays[0])


def test_npy_probs_with_labels_from_a_csv_column_equal_the_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arrays: Any
) -> None:
    pytest.importorskip("pyarrow")
    logits, labels = arrays
    probs = softmax(logits.astype(np.float64))
    columns = [f"c{k}" for k in range(probs.shape[1])]
    rows = "".join(
        f"{y}," + ",".join(repr(float(v)) for v in row) + "\n"
        for y, row in zip(labels, probs, strict=True)
    )
    (tmp_path / "ref.csv").write_text("target," + ",".join(columns) + "\n" + rows)
    np.save(tmp_path / "p.npy", probs)
    got, _ = _report(
        capsys,
        ["report", str(tmp_path / "p.npy"), "--labels", str(tmp_path / "ref.csv"), *_TARGET],
    )
    want, _ = _report(capsys, ["report", str(tmp_path / "ref.csv"), "--label-column", "target"])
    # the CSV names its classes c0.. and records its columns; every number is the same
    for report in (got, want):
        report.pop("columns")
        for row in report["per_class"]:
            row.pop("name")
    assert got == want


def test_npy_labels_from_a_parquet_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arrays: Any
) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    logits, labels = arrays
    np.savez(tmp_path / "ref.npz", logits=logits, labels=labels)
    pq.write_table(pa.table({"y": labels}), tmp_path / "y.parquet")
    np.save(tmp_path / "z.npy", logits)
    _same(
        capsys,
        ["report", str(tmp_path / "z.npy"), "--logits", "--labels", *_labels(tmp_path, "y")],
        ["report", str(tmp_path / "ref.npz")],
    )


def test_npy_binary_probs_with_boolean_labels_equal_the_npz(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(5)
    p = rng.uniform(0.01, 0.99, size=200)
    hit = rng.uniform(size=200) < p
    np.savez(tmp_path / "ref.npz", probs=p, labels=hit.astype(np.int64))
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "y.npy", hit)
    got, _ = _report(
        capsys, ["report", str(tmp_path / "p.npy"), "--labels", str(tmp_path / "y.npy")]
    )
    want, _ = _report(capsys, ["report", str(tmp_path / "ref.npz")])
    assert got == want
    assert got["binary"] is True


def test_npy_models_compared_on_one_labels_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arrays: Any
) -> None:
    logits, labels = arrays
    np.save(tmp_path / "a.npy", logits)
    np.save(tmp_path / "b.npy", logits * 0.5)
    np.save(tmp_path / "y.npy", labels)
    np.savez(tmp_path / "a.npz", logits=logits, labels=labels)
    np.savez(tmp_path / "b.npz", logits=logits * 0.5, labels=labels)
    argv = ["report", "--json", "--resamples", "30", "--labels", str(tmp_path / "y.npy")]
    assert main([*argv, str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--logits"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert main([*argv[:-2], str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]) == 0
    want = json.loads(capsys.readouterr().out)
    for comparison in (*got["comparisons"], *want["comparisons"]):
        comparison.pop("model"), comparison.pop("baseline")
    assert got["comparisons"] == want["comparisons"]
    assert [m["nll_nats"] for m in got["models"]] == [m["nll_nats"] for m in want["models"]]


# --- .pt / .pth --------------------------------------------------------------------------


@pytest.fixture
def torch() -> Any:
    return pytest.importorskip("torch")


@pytest.mark.parametrize("suffix", [".pt", ".pth"])
@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_pt_dict_of_tensors_equals_the_npz(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    arrays: Any,
    torch: Any,
    suffix: str,
    zipped: bool,
) -> None:
    logits, labels = arrays
    np.savez(tmp_path / "ref.npz", logits=logits, labels=labels)
    path = tmp_path / f"d{suffix}"
    saved = {"logits": torch.from_numpy(logits), "labels": torch.from_numpy(labels)}
    torch.save(saved, path, _use_new_zipfile_serialization=zipped)
    _same(capsys, ["report", str(path)], ["report", str(tmp_path / "ref.npz")])


def test_pt_tensor_with_labels_equals_the_npz(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arrays: Any, torch: Any
) -> None:
    logits, labels = arrays
    probs = softmax(logits.astype(np.float64))
    np.savez(tmp_path / "ref.npz", log_probs=np.log(probs), labels=labels)
    torch.save(torch.from_numpy(np.log(probs)), tmp_path / "lp.pt")
    torch.save(torch.from_numpy(labels).to(torch.int32), tmp_path / "y.pt")
    _same(
        capsys,
        ["report", str(tmp_path / "lp.pt"), "--log-probs", "--labels", str(tmp_path / "y.pt")],
        ["report", str(tmp_path / "ref.npz")],
    )
    # a dict with the predictions only takes its labels from --labels too
    torch.save({"log_probs": torch.from_numpy(np.log(probs))}, tmp_path / "d.pt")
    np.save(tmp_path / "y.npy", labels)
    _same(
        capsys,
        ["report", str(tmp_path / "d.pt"), "--labels", str(tmp_path / "y.npy")],
        ["report", str(tmp_path / "ref.npz")],
    )


def test_pt_tensor_that_requires_grad(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arrays: Any, torch: Any
) -> None:
    logits, labels = arrays
    np.savez(tmp_path / "ref.npz", logits=logits, labels=labels)
    weight = torch.nn.Parameter(torch.from_numpy(logits.copy()))
    torch.save({"logits": weight, "labels": torch.from_numpy(labels)}, tmp_path / "p.pt")
    _same(capsys, ["report", str(tmp_path / "p.pt")], ["report", str(tmp_path / "ref.npz")])


def test_pt_bfloat16_and_float16_are_read_as_the_library_reads_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arrays: Any, torch: Any
) -> None:
    """bfloat16 widened to float32 (exact), float16 kept: the report of the ``.npz`` of those
    values, and the report the library gives for the bfloat16 tensor itself."""
    logits, labels = arrays
    bf16 = torch.from_numpy(logits).to(torch.bfloat16)
    torch.save({"logits": bf16, "labels": torch.from_numpy(labels)}, tmp_path / "bf.pt")
    widened = bf16.to(torch.float32).numpy()
    assert np.array_equal(widened.astype(np.float64), bf16.to(torch.float64).numpy())
    np.savez(tmp_path / "bf.npz", logits=widened, labels=labels)
    _same(capsys, ["report", str(tmp_path / "bf.pt")], ["report", str(tmp_path / "bf.npz")])
    got, _ = _report(capsys, ["report", str(tmp_path / "bf.pt")])
    api = crossent.report(bf16, labels, form="logits", resamples=40).to_dict()
    assert got["nll_nats"] == api["nll_nats"]

    half = torch.from_numpy(logits).to(torch.float16)
    torch.save({"logits": half, "labels": torch.from_numpy(labels)}, tmp_path / "h.pt")
    np.savez(tmp_path / "h.npz", logits=half.numpy(), labels=labels)
    _same(capsys, ["report", str(tmp_path / "h.pt")], ["report", str(tmp_path / "h.npz")])


def test_pt_without_torch_names_the_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "d.pt").write_bytes(b"PK\x03\x04 not read")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    err = _error(capsys, ["report", str(tmp_path / "d.pt")])
    assert "needs torch" in err
    assert "pip install 'crossent[torch]'" in err


# --- errors ------------------------------------------------------------------------------


class _NotATensor:
    pass


def _bad_files(folder: Path, torch: Any) -> dict[str, tuple[list[str], str]]:
    """name -> (argv after 'report', a phrase of the message)."""
    logits, labels = make_predictions(n=12, classes=3, seed=2)
    np.save(folder / "z.npy", logits)
    np.save(folder / "y.npy", labels)
    np.save(folder / "obj.npy", np.array([1, "a", None], dtype=object), allow_pickle=True)
    np.save(folder / "ints.npy", labels.reshape(4, 3))
    np.save(folder / "y3d.npy", np.zeros((12, 1, 1), dtype=np.int64))
    np.save(folder / "yfloat.npy", labels.astype(np.float64))
    np.save(folder / "short.npy", labels[:-1])
    (folder / "trunc.npy").write_bytes((folder / "z.npy").read_bytes()[:-3])
    (folder / "long.npy").write_bytes((folder / "z.npy").read_bytes() + b"\0" * 8)
    (folder / "text.npy").write_text("label,a\n0,1\n")
    np.savez(folder / "ref.npz", logits=logits, labels=labels)
    z, y = str(folder / "z.npy"), str(folder / "y.npy")
    cases = {
        "object array": ([str(folder / "obj.npy"), "--labels", y], "never unpickles"),
        "object labels": ([z, "--logits", "--labels", str(folder / "obj.npy")], "never unpickles"),
        "truncated": ([str(folder / "trunc.npy"), "--labels", y], "truncated"),
        "trailing bytes": ([str(folder / "long.npy"), "--labels", y], "holds 296"),
        "not a .npy": ([str(folder / "text.npy"), "--labels", y], "not a valid .npy"),
        "integer predictions": ([str(folder / "ints.npy"), "--labels", y], "floating point"),
        "no labels": ([z, "--logits"], "--labels FILE"),
        "2-D labels": ([z, "--logits", "--labels", str(folder / "y3d.npy")], "one-dimensional"),
        "float labels": ([z, "--logits", "--labels", str(folder / "yfloat.npy")], "integers"),
        "fewer labels": ([z, "--logits", "--labels", str(folder / "short.npy")], "11 labels"),
        "labels of a .npz": ([str(folder / "ref.npz"), "--labels", y], "holds its own labels"),
        "missing labels file": ([z, "--labels", str(folder / "none.npy")], "no such file"),
        "labels of no format": ([z, "--labels", str(folder / "y.txt")], "--labels reads"),
        "id column": ([z, "--labels", y, "--id-column", "id"], "apply to tables"),
        "label column of a .npy": ([z, "--labels", y, "--label-column", "y"], "apply to tables"),
        "--labels on stdin": (["-", "--labels", y], "holds its own labels"),
    }
    torch.save({"logits": torch.zeros(12, 3), "probs": torch.zeros(12, 3)}, folder / "two.pt")
    torch.save({"logits": torch.zeros(12, 3), "labels": np.arange(12)}, folder / "np.pt")
    (folder / "pickle.pt").write_bytes(pickle.dumps({"logits": _NotATensor()}, protocol=2))
    (folder / "pickle4.pt").write_bytes(pickle.dumps({"logits": _NotATensor()}, protocol=4))
    torch.save([torch.zeros(12, 3)], folder / "list.pt")
    torch.save({"logits": "text", "labels": torch.zeros(12)}, folder / "str.pt")
    torch.save({"logits": torch.zeros(12, 3).to_sparse()}, folder / "sparse.pt")
    torch.save({"logits": torch.zeros(12, 3, dtype=torch.complex64)}, folder / "complex.pt")
    torch.save({"logits": torch.zeros(12, 3), "labels": torch.zeros(12)}, folder / "fy.pt")
    torch.save(
        {"logits": torch.zeros(12, 3), "labels": torch.zeros(12, dtype=torch.long)}, folder / "d.pt"
    )
    (folder / "random.pt").write_bytes(bytes(range(256)) * 3)
    pt = str(folder / "d.pt")
    cases.update(
        {
            "two prediction tensors": ([str(folder / "two.pt")], "exactly one"),
            "a NumPy array in a .pt": ([str(folder / "np.pt")], "never unpickles"),
            "a plain pickle": ([str(folder / "pickle.pt")], "never unpickles"),
            "a plain pickle 4": ([str(folder / "pickle4.pt")], "not a file torch.save wrote"),
            "a list": ([str(folder / "list.pt"), "--labels", y], "a list of 1 item;"),
            "a string": ([str(folder / "str.pt")], "must be a tensor"),
            "sparse": ([str(folder / "sparse.pt"), "--labels", y], "dense"),
            "complex": ([str(folder / "complex.pt"), "--labels", y], "floating point"),
            "float labels in a .pt": ([str(folder / "fy.pt")], "integers"),
            "random bytes": ([str(folder / "random.pt"), "--labels", y], "not a file torch.save"),
            "form of a dict": ([pt, "--logits"], "the name ('logits') says the form"),
            "two sources of labels": ([pt, "--labels", y], "second source of labels"),
            "labels .pt without labels": (
                [z, "--labels", str(folder / "two.pt")],
                "holds 2 tensors ('logits', 'probs') and none named 'labels'",
            ),
        }
    )
    return cases


def test_bad_npy_and_pt_files_exit_2_in_one_line_and_write_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    torch: Any,
) -> None:
    pytest.importorskip("pyarrow")
    output = tmp_path / "out.html"
    failures = []
    for name, (argv, phrase) in _bad_files(tmp_path, torch).items():
        for extra in ([], ["--output", str(output)]):
            code = main(["report", *argv, *extra, "--resamples", "3"])
            _out, err = capsys.readouterr()
            if code != 2 or len(err.strip().splitlines()) != 1 or phrase not in err:
                failures.append(f"{name}: exit {code}: {err.strip()}")
            if output.exists():
                failures.append(f"{name}: left {output.name}")
    assert not failures, "\n".join(failures)


# --- fuzzing -----------------------------------------------------------------------------


def _fuzz_sources(folder: Path) -> dict[str, bytes]:
    """The valid files the fuzz test damages, by kind; ``z.npy`` and ``y.npy`` written into
    ``folder`` (the other side of a call). The bytes are made once per process
    (:func:`_fuzz_bytes`): hypothesis replays its draws against them, and a legacy ``.pt``
    names its storages by their memory addresses, so a new one per example could change
    its length (a ``FlakyStrategyDefinition``: "Inconsistent data generation")."""
    sources = _fuzz_bytes()
    (folder / "z.npy").write_bytes(sources[".npy"])
    (folder / "y.npy").write_bytes(sources["labels.npy"])
    return dict(sources)


@functools.cache
def _fuzz_bytes() -> dict[str, bytes]:
    logits, labels = make_predictions(n=9, classes=3, seed=4)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        np.save(folder / "z.npy", logits)
        np.save(folder / "y.npy", labels)
        np.savez(folder / "y.npz", y=labels)
        sources = {
            ".npy": (folder / "z.npy").read_bytes(),
            "labels.npy": (folder / "y.npy").read_bytes(),
            "labels.npz": (folder / "y.npz").read_bytes(),
            "labels.safetensors": _safetensors_bytes({"labels": labels.astype(np.int64)}),
        }
        try:
            import torch
        except ImportError:
            return sources
        torch.save((torch.from_numpy(logits), torch.from_numpy(labels)), folder / "pair.pt")
        sources["pair.pt"] = (folder / "pair.pt").read_bytes()
        for zipped in (True, False):
            torch.save(
                {"logits": torch.from_numpy(logits), "labels": torch.from_numpy(labels)},
                folder / "d.pt",
                _use_new_zipfile_serialization=zipped,
            )
            sources[f".pt{'' if zipped else ' legacy'}"] = (folder / "d.pt").read_bytes()
    return sources


def _safetensors_bytes(tensors: dict[str, np.ndarray]) -> bytes:
    """A ``.safetensors`` file as the format's specification lays it out (8-byte header
    length, JSON header, little-endian data)."""
    kinds = {"float64": "F64", "int64": "I64"}
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        data = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": kinds[array.dtype.name],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + b"".join(blobs)


@settings(
    max_examples=90,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_npy_and_pt_files_give_a_clean_error_or_a_report(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    data: st.DataObject,
) -> None:
    """Truncations, overwritten byte runs and random bytes of a valid ``.npy``, labels
    ``.npy``, ``.npz`` and ``.safetensors``, and ``.pt`` (a dict in the zip and legacy
    formats, a (logits, labels) pair): exit 0 or 2, one line naming the file, never a
    traceback, and no output file after a failure."""
    monkeypatch.setattr(crossent.cli, "render_html", lambda report: "<html></html>")
    sources = _fuzz_sources(tmp_path)
    kind = data.draw(st.sampled_from(sorted(sources)), label="kind")
    original = sources[kind]
    how = data.draw(st.sampled_from(["truncate", "overwrite", "random"]), label="how")
    if how == "truncate":
        mutated = original[: data.draw(st.integers(1, len(original) - 1))]
    elif how == "overwrite":
        start = data.draw(st.integers(0, len(original) - 1))
        run = data.draw(st.binary(min_size=1, max_size=24))
        mutated = (original[:start] + run + original[start + len(run) :])[: len(original)]
    else:
        mutated = data.draw(st.binary(min_size=1, max_size=600))
    suffix = "." + kind.split(".")[-1].split(" ")[0]
    path = tmp_path / f"fuzzed{suffix}"
    path.write_bytes(mutated)
    output = tmp_path / "out.html"
    output.unlink(missing_ok=True)
    if kind.startswith("labels."):
        argv = [str(tmp_path / "z.npy"), "--logits", "--labels", str(path)]
    elif kind == ".npy":
        argv = [str(path), "--logits", "--labels", str(tmp_path / "y.npy")]
    elif kind == "pair.pt":
        argv = [str(path), "--logits"]
    else:
        argv = [str(path)]
    code = main(["report", *argv, "--resamples", "3", "--top", "2", "--output", str(output)])
    _out, err = capsys.readouterr()
    assert code in (0, 2), err
    assert "Traceback" not in err, err
    assert "internal error" not in err, err
    if code == 2:
        assert len(err.strip().splitlines()) == 1, err
        named = f"crossent: error: {argv[0]}: the labels in {path}" if "labels." in kind else ""
        assert err.startswith(f"crossent: error: {path}") or err.startswith(named), err
        assert not output.exists()


# --- a CSV's named index -----------------------------------------------------------------


def _named_index_csv(folder: Path, values: np.ndarray, labels: np.ndarray) -> tuple[Path, Path]:
    """The CSV ``df.index.name = "id"; df.to_csv(path)`` writes, and the same without it."""
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(values, columns=[f"c{k}" for k in range(values.shape[1])])
    frame["label"] = labels
    frame.index.name = "id"
    frame.to_csv(folder / "named.csv")
    frame.to_csv(folder / "plain.csv", index=False)
    return folder / "named.csv", folder / "plain.csv"


def test_named_index_is_refused_with_the_fix_until_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arrays: Any
) -> None:
    """``df.index.name = "id"; df.to_csv(path)``: main read 'id' as a class (exit 0 with
    a note on stderr, and the metrics of an 11-class model); it is refused, exit 2 with
    the fix, whatever the form, until --id-column or --class-columns says what it is."""
    pytest.importorskip("pyarrow")
    logits, labels = arrays
    named, plain = _named_index_csv(tmp_path, logits.astype(np.float64), labels)
    output = tmp_path / "out.html"
    for form in (["--logits"], ["--log-probs"], []):
        err = _error(capsys, ["report", str(named), *form, "--output", str(output)])
        assert err.startswith(f"crossent: error: {named}: the first column, 'id', holds integers")
        assert "pass --id-column id if it identifies rows" in err
        assert not output.exists()
    # with it: the metrics of the table without the index, and nothing on stderr
    got, err = _report(capsys, ["report", str(named), "--logits", "--id-column", "id"])
    want, _ = _report(capsys, ["report", str(plain), "--logits"])
    assert err == ""
    got.pop("columns"), want.pop("columns")
    for report in (got, want):
        for row in report["most_surprising"]:
            row.pop("id", None)
    assert got == want
    # listed as a class, it is one (the user said so)
    listed, _ = _report(
        capsys, ["report", str(named), "--logits", "--class-columns", "id,c0,c1,c2,c3,c4"]
    )
    assert listed["classes"] == 6


def test_integer_class_columns_that_repeat_are_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hard 0/1 predictions stored as integers are classes like any other; a later
    column of distinct integers is refused by its name, not as the first column."""
    pytest.importorskip("pyarrow")
    labels = np.array([0, 1, 1, 0, 1, 0])
    hard = np.stack([1 - labels, labels], axis=1)
    rows = "".join(f"{y},{a},{b}\n" for y, (a, b) in zip(labels, hard, strict=True))
    (tmp_path / "hard.csv").write_text("label,no,yes\n" + rows)
    _, err = _report(capsys, ["report", str(tmp_path / "hard.csv")])
    assert err == ""
    logits, labels = make_predictions(n=30, classes=2, seed=1)
    rows = "".join(
        f"{y},{float(a)!r},{float(b)!r},{1000 + 7 * k}\n"
        for k, (y, (a, b)) in enumerate(zip(labels, logits, strict=True))
    )
    (tmp_path / "ids.csv").write_text("label,a,b,row\n" + rows)
    err = _error(capsys, ["report", str(tmp_path / "ids.csv"), "--logits"])
    assert "the column 'row' holds integers, a different one in every row" in err
    assert "pass --id-column row if it identifies rows" in err
    got, _ = _report(
        capsys, ["report", str(tmp_path / "ids.csv"), "--logits", "--id-column", "row"]
    )
    assert got["columns"]["id"] == "row"


def test_npz_member_whose_header_numpy_cannot_tokenize(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by the fuzz above: a ``[`` in a member's header made NumPy's header reader
    raise ``tokenize.TokenError``, an internal error (exit 3) on main."""
    import io
    import zipfile

    member, labels = io.BytesIO(), io.BytesIO()
    np.save(member, np.full((4, 2), 0.5))
    np.save(labels, np.array([0, 1, 0, 1]))
    damaged = bytearray(member.getvalue())
    damaged[damaged.index(b"fortran_order'") + 14] = ord("[")
    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as archive:
        archive.writestr("probs.npy", bytes(damaged))
        archive.writestr("labels.npy", labels.getvalue())
    err = _error(capsys, ["report", str(tmp_path / "bad.npz")])
    assert "'probs' is not a valid .npy array" in err
