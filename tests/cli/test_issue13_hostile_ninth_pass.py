"""Issue 13, a ninth hostile pass over the command line (branch hostilecli9).

* A ``.npy`` (or an uncompressed ``.npz`` member, a ``.safetensors`` tensor, a small
  zip-format ``.pt``) was memory-mapped in place: when another process truncated the
  file while the report read it (``np.save`` over it from a training job), the process
  died of SIGBUS, exit 135, "Bus error" and no crossent line, which Python cannot
  catch.  The arrays are now copied out of the file (into memory, or into a mapped
  scratch file past 256 MiB), so a later truncation or rewrite cannot reach them, and a
  file that ends while it is copied is one line, exit 2.  The tests rewrite the file in
  place after it was opened (same size, other values: what a map shows at once, with
  no crash), and truncate it between its header check and the read.
* Ctrl-C in the first second of the installed ``crossent`` command (while its script
  imported ``crossent.cli``: NumPy, SciPy, the package) printed Python's
  KeyboardInterrupt traceback, and so did Ctrl-C while the parser was built.  The
  entry point is now ``crossent_command:console_main``, a module outside the package
  that imports it inside the handler: "crossent: interrupted", exit 130, as later.
* A CSV in UTF-16 (what Windows PowerShell 5's ``>`` writes) or UTF-32 was refused with
  pyarrow's parse error quoting NUL bytes ("Expected 4 columns, got 1: \\x00"), for a
  file and on standard input; it is now named, with the ``iconv`` command that converts it.
* A full TMPDIR (the scratch copy of a compressed ``.npz`` member, a table, standard
  input, and now a ``.npy`` past 256 MiB) was "preds.csv: cannot be read (No space left
  on device)", and on standard input "[Errno 28] No space left on device"; it now names
  the scratch folder and TMPDIR.
"""

from __future__ import annotations

import importlib
import io
import json
import re
import struct
import sys
import tomllib
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import crossent.cli._npy as npy_module
from crossent.cli import console_main, main
from crossent.cli._sources import open_dataset

_ROWS, _CLASSES = 40, 3


def _probs(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(_CLASSES), size=_ROWS)


def _labels() -> np.ndarray:
    return np.arange(_ROWS, dtype=np.int64) % _CLASSES


def _npy(path: Path, probs: np.ndarray) -> Path:
    np.save(path, probs)
    return path


def _npz(path: Path, probs: np.ndarray) -> Path:
    np.savez(path, probs=probs, labels=_labels())  # stored, not compressed
    return path


def _safetensors(path: Path, probs: np.ndarray) -> Path:
    """Written from the format's specification (8-byte header length, JSON header,
    little-endian data), independently of the reader."""
    blobs = [probs.astype("<f8").tobytes(), _labels().astype("<i8").tobytes()]
    header = {
        "probs": {"dtype": "F64", "shape": list(probs.shape), "data_offsets": [0, len(blobs[0])]},
        "labels": {
            "dtype": "I64",
            "shape": [_ROWS],
            "data_offsets": [len(blobs[0]), len(blobs[0]) + len(blobs[1])],
        },
    }
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return path


def _pt(path: Path, probs: np.ndarray) -> Path:
    torch = pytest.importorskip("torch")
    torch.save({"probs": torch.from_numpy(probs), "labels": torch.from_numpy(_labels())}, path)
    return path


def _legacy_pt(path: Path, probs: np.ndarray) -> Path:
    """A ``.pt`` in the legacy (not zip) format, which ``torch.load(mmap=True)`` refuses:
    read into memory at any size."""
    torch = pytest.importorskip("torch")
    tensors = {"probs": torch.from_numpy(probs), "labels": torch.from_numpy(_labels())}
    torch.save(tensors, path, _use_new_zipfile_serialization=False)
    return path


_WRITERS: dict[str, Callable[[Path, np.ndarray], Path]] = {
    ".npy": _npy,
    ".npz": _npz,
    ".safetensors": _safetensors,
    ".pt": _pt,
    "-legacy.pt": _legacy_pt,
}


@pytest.mark.parametrize(
    ("suffix", "large"),
    # every array past the in-memory bound: the scratch-file copy (a large .pt: a map of
    # its scratch copy; it was mapped in place, branch leftovers10)
    [(suffix, False) for suffix in _WRITERS] + [(suffix, True) for suffix in _WRITERS],
    ids=lambda value: {False: "in-memory", True: "scratch-copy"}.get(value, value),
)
def test_predictions_are_not_a_map_of_the_users_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, large: bool
) -> None:
    """The file rewritten in place once opened (same size, other values): the opened
    predictions keep the values read.  A map of the file showed the new ones, and a
    truncation instead of the rewrite ended the process with SIGBUS."""
    if large:
        monkeypatch.setattr("crossent.cli._copied.IN_MEMORY_BYTES", 0)
    write = _WRITERS[suffix]
    first, second = _probs(0), _probs(1)
    path = write(tmp_path / f"model{suffix}", first)
    rewritten = write(tmp_path / f"other{suffix}", second).read_bytes()
    assert len(rewritten) == path.stat().st_size  # the same layout, other values
    labels = _npy(tmp_path / "labels.npy", _labels()) if suffix == ".npy" else None
    dataset = open_dataset(path, form=None, labels=labels)
    try:
        with open(path, "r+b") as file:
            file.write(rewritten)
        np.testing.assert_array_equal(np.asarray(dataset.values), first)
        if not suffix.endswith(".pt"):  # read-only, as the map was (torch's tensor is its own)
            assert not np.asarray(dataset.values).flags.writeable
        np.testing.assert_array_equal(dataset.labels, _labels())
    finally:
        dataset.close()


@pytest.mark.parametrize("which", ["predictions", "labels"])
def test_a_npy_truncated_while_it_is_read_is_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    which: str,
) -> None:
    """Truncated between its header check and the read of its data: main said "internal
    error (ValueError: mmap length is greater than file size)", exit 3, for the
    predictions, and read the labels short (a reshape's ValueError, exit 3).  The files
    are larger than a read buffer (which would hold all of a small one already)."""
    rows = 20_000
    rng = np.random.default_rng(0)
    model = tmp_path / "model.npy"
    np.save(model, rng.dirichlet(np.ones(_CLASSES), size=rows))
    labels = tmp_path / "labels.npy"
    np.save(labels, np.arange(rows, dtype=np.int64) % _CLASSES)
    victim = model if which == "predictions" else labels
    checked = npy_module.npy_layout

    def truncating(raw: Any, size: int, path: Path, name: str) -> Any:
        layout = checked(raw, size, path, name)
        if Path(path) == victim:
            with open(victim, "r+b") as file:
                file.truncate(layout[3] + 100)
        return layout

    monkeypatch.setattr(npy_module, "npy_layout", truncating)
    code = main(["report", str(model), "--labels", str(labels), "--resamples", "5"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1, err
    wanted = 128 + rows * (_CLASSES if which == "predictions" else 1) * 8
    found = re.fullmatch(
        rf"crossent: error: {re.escape(str(victim))}: the file ends after ([0-9_]+) bytes, "
        rf"where its array needs {wanted:_}; was it truncated or rewritten while crossent "
        r"read it\?\n",
        err,
    )
    assert found, err
    assert int(found.group(1)) < wanted


def _interrupt(*args: object) -> Any:
    raise KeyboardInterrupt


def test_ctrl_c_while_the_command_is_imported_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C while the entry point imports ``crossent.cli`` (a module whose import is
    interrupted); main's entry point was ``crossent.cli`` itself, imported by the
    script before any handler."""
    command = importlib.import_module("crossent_command")  # main: no such module
    interrupted = types.ModuleType("crossent.cli")
    interrupted.__getattr__ = _interrupt  # type: ignore[method-assign]
    ended: BaseException | None = None
    # The fake module is gone again before anything is asserted: pytest's report of a
    # failure would read it and end in an INTERNALERROR (the mutation pass of stop 56).
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "crossent.cli", interrupted)
        try:
            command.console_main()
        except (SystemExit, KeyboardInterrupt) as error:
            ended = error
    if isinstance(ended, KeyboardInterrupt):
        pytest.fail("Ctrl-C while importing the command reached Python (a traceback)")
    assert isinstance(ended, SystemExit), ended
    assert ended.code == 130
    assert capsys.readouterr().err == "crossent: interrupted\n"


def test_the_installed_command_enters_through_crossent_command() -> None:
    """The script ``pip`` writes imports the entry point's module first: it must be the
    light one, and it must be in the distribution."""
    config = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert config["project"]["scripts"] == {"crossent": "crossent_command:console_main"}
    assert "crossent_command" in config["tool"]["setuptools"]["py-modules"]


def test_ctrl_c_while_the_parser_is_built_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before ``main``'s handler (building the parser, reading the arguments): main
    let the KeyboardInterrupt reach Python, which printed its traceback."""
    monkeypatch.setattr("crossent.cli._parser", _interrupt)
    monkeypatch.setattr(sys, "argv", ["crossent", "demo"])
    try:
        with pytest.raises(SystemExit) as ended:
            console_main()
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C while the parser was built reached Python (a traceback)")
    assert ended.value.code == 130
    assert capsys.readouterr().err == "crossent: interrupted\n"


_TABLE = "label,a,b\n0,0.25,0.75\n1,0.5,0.5\n"


@pytest.mark.parametrize(
    ("codec", "named"),
    # utf-32-be: branch mutation8 (its mark's signature dropped was let through)
    [("utf-16", "UTF-16"), ("utf-16-be", "UTF-16"), ("utf-32", "UTF-32"), ("utf-32-be", "UTF-32")],
)
@pytest.mark.parametrize("where", ["file", "stdin"])
def test_a_csv_in_utf16_or_utf32_is_named(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    codec: str,
    named: str,
    where: str,
) -> None:
    """With its byte-order mark (``utf-16-be`` is written with one by hand): main said
    "cannot be parsed (CSV parse error: Expected 3 columns, got 1: \\x00...)"."""
    data = ("\ufeff" if codec.endswith("-be") else "").encode(codec) + _TABLE.encode(codec)
    path = tmp_path / "preds.csv"
    path.write_bytes(data)
    if where == "stdin":
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code = main(["report", str(path) if where == "file" else "-", "--resamples", "2"])
    err = capsys.readouterr().err
    assert code == 2, err
    convert = f"iconv -f {named} -t UTF-8"
    assert err == (
        f"crossent: error: {path}: is {named} text, not UTF-8; save it as UTF-8, or convert "
        f"it in a pipe: {convert} {path} | crossent report - ...\n"
        if where == "file"
        else f"crossent: error: standard input is {named} text, not UTF-8; convert it in the "
        f"pipe (... | {convert} | crossent report - ...)\n"
    )


@pytest.mark.parametrize("source", ["npz", "npy", "csv", "stdin", "pt"])
def test_a_full_scratch_folder_is_named(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    source: str,
) -> None:
    """Every scratch file on a full device (``/dev/full``: each write fails with
    ENOSPC), with ``tempfile.tempdir`` pinned so that the folder named is known."""
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    probs, labels = _probs(0), _labels()
    table = "label,a,b,c\n" + "".join(
        f"{y},{p[0]!r},{p[1]!r},{p[2]!r}\n"
        for y, p in zip(labels.tolist(), probs.tolist(), strict=True)
    )
    argv = {
        "npz": [str(tmp_path / "model.npz")],
        "npy": [str(tmp_path / "model.npy"), "--labels", str(tmp_path / "labels.npy")],
        "csv": [str(tmp_path / "model.csv")],
        "stdin": ["-"],
        "pt": [str(tmp_path / "model.pt")],  # (mapped in place on main: no scratch copy)
    }[source]
    if source == "pt":
        _pt(tmp_path / "model.pt", probs)
    np.savez_compressed(tmp_path / "model.npz", probs=probs, labels=labels)
    np.save(tmp_path / "model.npy", probs)
    np.save(tmp_path / "labels.npy", labels)
    (tmp_path / "model.csv").write_text(table)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(table.encode())))
    monkeypatch.setattr("crossent.cli._copied.IN_MEMORY_BYTES", 0)  # the .npy's copy too
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setattr(
        "tempfile.TemporaryFile",
        lambda **kwargs: open("/dev/full", "r+b", buffering=0),  # noqa: SIM115 (closed by the reader)
    )
    code = main(["report", *argv, "--resamples", "2"])
    err = capsys.readouterr().err
    assert code == 2, err
    named = "standard input" if source == "stdin" else argv[0]
    assert err == (
        f"crossent: error: {named}: cannot be copied to a scratch file in {tmp_path} (No "
        "space left on device); set TMPDIR to a folder with room\n"
    )
