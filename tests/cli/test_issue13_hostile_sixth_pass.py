"""Issue 13, a sixth hostile pass over the command line (branch clihostile6).

* ``crossent report a.npz a.npz`` (also ``./a.npz``, a symbolic or hard link to it, or
  ``-`` while standard input reads it) compared the model with itself: exit 0, and
  differences of 0.0000 with intervals [0.0000, 0.0000], as if two models agreed
  exactly.  Now refused with one line naming both.
* ``--output`` naming a FIFO that no process reads blocked forever (opening a FIFO for
  writing waits for a reader); now one line, exit 2, at once.  A FIFO being read still
  gets the page.  A socket or a block device is refused before the work.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from crossent._files import write_atomically
from crossent.cli import main

from .test_issue13_hostile_fifth_pass import _FAST, _one_line_error

pytest.importorskip("rich")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "a.npz"
    np.savez(path, probs=rng.dirichlet(np.ones(3), size=40), labels=rng.integers(0, 3, 40))
    return path


# --- the same file twice ------------------------------------------------------------------


@pytest.mark.parametrize("how", ["same", "dot", "symlink", "hardlink"])
def test_the_same_file_twice_is_refused(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    model: Path,
    how: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    second = {"same": "a.npz", "dot": "./a.npz", "symlink": "l.npz", "hardlink": "h.npz"}[how]
    if how == "symlink":
        os.symlink("a.npz", "l.npz")
    if how == "hardlink":
        os.link("a.npz", "h.npz")
    err = _one_line_error(capsys, ["report", "a.npz", second, "--json", *_FAST])
    shown = str(Path(second))
    assert err == (
        f"crossent: error: a.npz and {shown} are the same file; compare different models' files\n"
    )


@pytest.mark.parametrize("stdin_first", [False, True], ids=["file-first", "stdin-first"])
def test_standard_input_reading_the_other_file_is_refused(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    stdin_first: bool,
) -> None:
    """In either order (branch mutation4: with ``-`` first, the mutant that answered
    "different files" there passed every CLI test)."""
    table = tmp_path / "p.csv"
    table.write_text("label,a,b\n0,0.9,0.1\n1,0.6,0.4\n0,0.7,0.3\n")
    names = ["-", str(table)] if stdin_first else [str(table), "-"]
    with table.open() as handle:
        monkeypatch.setattr(sys, "stdin", handle)
        err = _one_line_error(capsys, ["report", *names, "--json", *_FAST])
    shown = " and ".join("'-' (standard input)" if n == "-" else n for n in names)
    assert err == (f"crossent: error: {shown} are the same file; compare different models' files\n")


def test_two_copies_are_still_compared(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, model: Path
) -> None:
    """Equal content in two files is two files (two runs of one model): not refused."""
    copy = tmp_path / "b.npz"
    copy.write_bytes(model.read_bytes())
    assert main(["report", str(model), str(copy), "--json", *_FAST]) == 0
    assert '"models"' in capsys.readouterr().out


# --- --output that is not a regular file ----------------------------------------------------


def _no_fifos() -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("needs os.mkfifo")


def test_output_fifo_nobody_reads_is_refused_at_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, model: Path
) -> None:
    """Opened plainly, the FIFO blocked the command forever.  Run in a thread: if it
    blocks, a reader is opened to free it and the test fails."""
    _no_fifos()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    codes: list[int] = []
    worker = threading.Thread(
        target=lambda: codes.append(main(["report", str(model), "--output", str(fifo), *_FAST])),
        daemon=True,
    )
    worker.start()
    worker.join(60)
    if worker.is_alive():  # blocked in open(): free it
        with open(fifo, "rb") as reader:
            reader.read()
        worker.join(60)
        pytest.fail("--output FIFO without a reader blocked")
    out, err = capsys.readouterr()
    assert codes == [2], err
    assert out == ""
    assert err == (
        f"crossent: error: {fifo}: is a FIFO (named pipe) that no process reads; start its "
        "reader first, or give a file name\n"
    )
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "pipe"]


def test_write_atomically_fifo_nobody_reads_raises(tmp_path: Path) -> None:
    """The library's writer (Report.to_html(path)) refuses it too, instead of blocking."""
    _no_fifos()
    import crossent

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result: list[BaseException | None] = []

    def write() -> None:
        try:
            write_atomically(fifo, "page")
            result.append(None)
        except BaseException as exc:  # handed to the test's thread
            result.append(exc)

    worker = threading.Thread(target=write, daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():
        with open(fifo, "rb") as reader:
            reader.read()
        worker.join(30)
        pytest.fail("write_atomically on a FIFO without a reader blocked")
    assert isinstance(result[0], crossent.InputError)
    assert "no process reads" in str(result[0])


def test_output_fifo_being_read_gets_the_whole_page(tmp_path: Path) -> None:
    """Opened without waiting, then written blocking: a page larger than the pipe's
    buffer (64 KiB) arrives whole (a non-blocking write would stop with EAGAIN)."""
    _no_fifos()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    page = "é" * 300_000
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # the FIFO has a reader
    failed: list[BaseException] = []

    def write() -> None:
        try:
            write_atomically(fifo, page)
        except BaseException as exc:  # handed to the test's thread
            failed.append(exc)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(reader, 1 << 16)
            except BlockingIOError:  # opened, nothing written yet
                chunk = None
            if chunk:
                chunks.append(chunk)
            elif not writer.is_alive():  # b"" before the writer opens it is no end
                break
            else:
                writer.join(0.01)
        while chunk := os.read(reader, 1 << 16):  # the writer closed: what is left, then EOF
            chunks.append(chunk)
    finally:
        os.close(reader)
    assert failed == []
    assert b"".join(chunks) == page.encode("utf-8")


def test_output_socket_is_refused_before_the_work(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    model: Path,
) -> None:
    socket = pytest.importorskip("socket")
    if not hasattr(socket, "AF_UNIX"):
        pytest.skip("needs Unix sockets")
    monkeypatch.chdir(tmp_path)  # a short relative name: AF_UNIX paths are limited
    with socket.socket(socket.AF_UNIX) as server:
        server.bind("sock")
        import crossent.cli as cli

        def no_work(*args: object, **kwargs: object) -> None:
            raise AssertionError("the work ran before --output was checked")

        monkeypatch.setattr(cli, "open_dataset", no_work)
        err = _one_line_error(capsys, ["report", str(model), "--output", "sock", *_FAST])
    assert err == "crossent: error: sock: is a socket, not a file; the output needs a file name\n"


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A regular file that ``os.stat`` reports as a block device.  Never a real disk: as
    root, code that writes to a block device (main's did) would overwrite it."""
    import crossent._files as files
    import crossent.cli._files as cli_files

    path = tmp_path / "disk"
    path.write_text("blocks")
    real_stat = os.stat

    def stat_as_disk(name: object, *args: object, **kwargs: object) -> os.stat_result:
        found = real_stat(name, *args, **kwargs)  # type: ignore[arg-type]
        if os.fspath(name) != os.fspath(path):  # type: ignore[arg-type]
            return found
        fields = list(found)
        fields[0] = stat.S_IFBLK | 0o600
        return os.stat_result(fields)

    monkeypatch.setattr(files.os, "stat", stat_as_disk)
    monkeypatch.setattr(cli_files.os, "stat", stat_as_disk)
    return path


def test_output_block_device_is_refused_and_left_alone(
    capsys: pytest.CaptureFixture[str], model: Path, disk: Path
) -> None:
    """A disk is never written (as root, the page would overwrite its first blocks)."""
    err = _one_line_error(capsys, ["report", str(model), "--output", str(disk), *_FAST])
    assert err == (
        f"crossent: error: {disk}: is a block device (a disk), not a file; the output "
        "needs a file name\n"
    )
    assert disk.read_text() == "blocks"


def test_write_atomically_refuses_a_block_device(disk: Path) -> None:
    import crossent

    with pytest.raises(crossent.InputError, match="is a block device"):
        write_atomically(disk, "page")
    assert disk.read_text() == "blocks"


def test_output_dev_null_still_works(capsys: pytest.CaptureFixture[str], model: Path) -> None:
    """A character device is still written in place (mutant-guarded: refusing every
    device that is not a regular file)."""
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null")
    assert main(["report", str(model), "--output", "/dev/null", "--json", *_FAST]) == 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


# --- an unnamed column that is not the first ---------------------------------------------


def test_an_unnamed_middle_column_is_refused_not_taken_as_the_ids(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``label,,b`` (a header cell lost): the unnamed column was taken as pandas' index,
    so ``b`` alone was read as the log-odds of class 1: NLL 0.6437 (SciPy below) where the
    two logit columns give 0.2713, with exit 0."""
    path = tmp_path / "p.csv"
    path.write_text("label,,b\n0,2.0,0.5\n1,0.1,1.0\n")
    err = _one_line_error(capsys, ["report", str(path), "--logits", "--json", *_FAST])
    assert err == (
        f"crossent: error: {path}: column 2 has no name in the header; name it, or list the "
        "class columns with --class-columns\n"
    )


def test_an_unnamed_first_column_is_still_the_pandas_index(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Guard (mutant: refusing every unnamed column): ``to_csv``'s index, the unnamed
    first column, is still the ids, and the NLL is that of the two logit columns."""
    import json

    from scipy.special import log_softmax

    path = tmp_path / "p.csv"
    path.write_text(",label,a,b\n7,0,2.0,0.5\n8,1,0.1,1.0\n")
    assert main(["report", str(path), "--logits", "--json", *_FAST]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["columns"]["id"] == ""
    assert payload["columns"]["classes"] == ["a", "b"]
    logits = np.array([[2.0, 0.5], [0.1, 1.0]])
    expected = -log_softmax(logits, axis=1)[[0, 1], [0, 1]].mean()
    assert payload["nll_nats"] == pytest.approx(expected, rel=1e-12)


def test_an_unnamed_middle_column_left_out_by_class_columns_is_ignored(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import json

    path = tmp_path / "p.csv"
    path.write_text("label,,a,b\n0,5,2.0,0.5\n1,6,0.1,1.0\n")
    argv = ["report", str(path), "--logits", "--class-columns", "a,b", "--json", *_FAST]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["columns"]["classes"] == ["a", "b"]
    assert payload["columns"]["ignored"] == [""]


# --- labels written as floating-point numbers ---------------------------------------------


@pytest.mark.parametrize(
    ("cells", "row", "shown"),
    [
        (["1.0", "0.0"], 0, "1.0"),
        (["0", "1.5"], 1, "1.5"),
        (["", "2.5"], 1, "2.5"),
    ],
    ids=["whole", "fraction", "after-an-empty-cell"],  # past int64: test_issue13_hostile_cli10
)
def test_float_labels_are_refused_naming_the_row_and_value(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cells: list[str], row: int, shown: str
) -> None:
    """It said only "it holds double" (not where, nor what to write instead)."""
    path = tmp_path / "p.csv"
    path.write_text(f"label,a,b\n{cells[0]},0.9,0.1\n{cells[1]},0.2,0.8\n")
    err = _one_line_error(capsys, ["report", str(path), "--json", *_FAST])
    assert err == (
        f"crossent: error: {path}: the 'label' column must hold integers (class ids), "
        "booleans, or the names of the class columns; it holds floating-point numbers "
        f"(row {row} is read as {shown}); write the class ids as integers (1, not 1.0)\n"
    )


@pytest.mark.parametrize(
    ("cells", "labels"),
    [(["1", "+0"], [1, 0]), (["+1", " +0 "], [1, 0]), (["+0", "1"], [0, 1])],
    ids=["plus-zero-second", "plus-one", "plus-zero-first"],
)
def test_signed_integer_labels_are_integers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cells: list[str], labels: list[int]
) -> None:
    """leftovers9: pyarrow reads ``+0`` as 0.0, and the column was refused as holding
    "floating-point numbers (row 0 is read as 1.0)", naming a row that held ``1``. The
    labels are the integers written; the NLL is that of the probabilities they pick."""
    import json

    path = tmp_path / "pm.csv"
    path.write_text(f"label,a,b\n{cells[0]},0.25,0.75\n{cells[1]},0.5,0.5\n")
    assert main(["report", str(path), "--json", *_FAST]) == 0
    nll = json.loads(capsys.readouterr().out)["nll_nats"]
    picked = [[0.25, 0.75][labels[0]], [0.5, 0.5][labels[1]]]
    assert nll == pytest.approx(-sum(np.log(picked)) / 2, rel=1e-12)


@pytest.mark.parametrize(
    ("cells", "said"),
    [
        (["+1", "-1"], "(row 1 has -1)"),
        (["1", "+0", "1.0"], "floating-point numbers (row 2 is read as 1.0)"),
    ],
    ids=["negative", "whole-float-after-plus"],
)
def test_signed_integer_labels_refused_name_their_row(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cells: list[str], said: str
) -> None:
    """A negative label is still refused, naming its row; a ``1.0`` beside ``+0`` is
    named by its own row (it said row 0, which held ``1``)."""
    path = tmp_path / "pm.csv"
    path.write_text("label,a,b\n" + "".join(f"{cell},0.25,0.75\n" for cell in cells))
    err = _one_line_error(capsys, ["report", str(path), "--json", *_FAST])
    assert said in err, err


@pytest.mark.skipif(not os.path.isfile("/proc/version"), reason="needs Linux's /proc")
def test_output_in_a_folder_that_takes_no_new_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """leftovers9: ``--output /proc/version`` said "cannot write (No such file or
    directory)" of a file that exists: the folder takes no new file (the temporary)."""
    path = tmp_path / "p.csv"
    path.write_text("label,a,b\n1,0.25,0.75\n0,0.5,0.5\n")
    for target in ("/proc/version", "/proc/crossent-new.html"):
        err = _one_line_error(capsys, ["report", str(path), "--output", target, *_FAST])
        assert err == (
            f"crossent: error: {target}: cannot write: the folder /proc takes no new files "
            "(the page is written to a new file beside the output, then renamed over it); "
            "choose another --output\n"
        )
