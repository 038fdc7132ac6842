"""Tests that kill the surviving mutants of ``crossent/cli/_files.py`` (tests/MUTATION.md).

The writer has since moved to ``crossent/_files.py`` (issue 11: one file writer, shared
with ``Report.to_html(path)``); these tests follow it there.

Each test calls :func:`write_atomically` / :func:`check_output` directly (no CLI run), so a
mutant costs milliseconds here.  The mutant each test kills is named in its docstring by the
number mutmut 2.5.1 gave it in the recorded run.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import crossent
import crossent._files as files
from crossent._files import write_atomically
from crossent.cli._files import check_output


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def replaced(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, Path]]:
    """Record every ``os.replace`` the module makes (and still make it)."""
    calls: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def replace(source: str, target: str) -> None:
        calls.append((Path(source), Path(target)))
        real_replace(source, target)

    monkeypatch.setattr(files.os, "replace", replace)
    return calls


def _message(path: Path, rest: str) -> str:
    return "^" + re.escape(f"{path}: {rest}") + "$"


def test_mutants_files_temporary_name_is_hidden_and_short(
    tmp_path: Path, replaced: list[tuple[Path, Path]]
) -> None:
    """Mutants 1, 2, 35, 36: the temporary name is ``.crossent-<16 hex>.tmp``."""
    output = tmp_path / "out.txt"
    write_atomically(output, "h\u00e9\n")
    [(source, target)] = replaced
    assert re.fullmatch(r"\.crossent-[0-9a-f]{16}\.tmp", source.name), source.name
    assert source.parent == tmp_path
    assert target == output
    assert output.read_text(encoding="utf-8") == "h\u00e9\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_mutants_files_write_error_message_is_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutants 3, 4: ``<path>: cannot write (<strerror>)``, never the temporary name."""

    def fail(source: object, target: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(source))

    monkeypatch.setattr(files.os, "replace", fail)
    output = tmp_path / "out.txt"
    with pytest.raises(
        crossent.InputError, match=_message(output, "cannot write (No space left on device)")
    ):
        write_atomically(output, "x")
    assert list(tmp_path.iterdir()) == []


def test_mutants_files_check_output_accepts_new_and_existing_files(tmp_path: Path) -> None:
    """Mutants 5, 8, 9: a new output beside inputs that do not resolve to it is accepted
    (``samefile`` failing on a missing path means "not the same file")."""
    source = tmp_path / "in.npz"
    source.write_bytes(b"data")
    check_output(tmp_path / "new.html", inputs=[source, tmp_path / "missing.npz"])
    existing = tmp_path / "old.html"
    existing.write_text("old")
    check_output(existing, inputs=[source])


def test_mutants_files_check_output_messages_are_exact(tmp_path: Path) -> None:
    """Mutants 6, 7, 10: the three refusals of ``check_output`` word for word."""
    source = tmp_path / "in.npz"
    source.write_bytes(b"data")
    link = tmp_path / "link.npz"
    link.symlink_to(source)
    expected = f"the output is the input file {source}; choose another --output"
    with pytest.raises(crossent.InputError, match=_message(link, expected)):
        check_output(link, inputs=[source])
    with pytest.raises(
        crossent.InputError, match=_message(tmp_path, "is a directory; --output needs a file name")
    ):
        check_output(tmp_path, inputs=[source])
    missing = tmp_path / "nowhere" / "out.html"
    with pytest.raises(
        crossent.InputError, match=_message(missing, f"the folder {missing.parent} does not exist")
    ):
        check_output(missing, inputs=[source])


def test_mutants_files_write_refusals_are_exact(tmp_path: Path) -> None:
    """Mutants 15, 21: a directory and a missing folder, refused word for word."""
    with pytest.raises(
        crossent.InputError,
        match=_message(tmp_path, "is a directory; the output needs a file name"),
    ):
        write_atomically(tmp_path, "x")
    missing = tmp_path / "nowhere" / "out.html"
    with pytest.raises(
        crossent.InputError, match=_message(missing, f"the folder {missing.parent} does not exist")
    ):
        write_atomically(missing, "x")


def test_mutants_files_replacing_a_file_is_atomic_and_keeps_its_mode(
    tmp_path: Path, replaced: list[tuple[Path, Path]], umask_022: None
) -> None:
    """Mutants 11, 17, 22, 23: an existing regular file is replaced by rename (not written
    in place) and the new file has the old one's mode."""
    output = tmp_path / "out.txt"
    output.write_text("old")
    os.chmod(output, 0o600)
    write_atomically(output, "new")
    assert len(replaced) == 1
    assert output.read_text() == "new"
    assert stat.S_IMODE(os.stat(output).st_mode) == 0o600


def test_mutants_files_new_file_gets_the_umasks_mode(tmp_path: Path, umask_022: None) -> None:
    """Mutant 38: a new file is created with 0o666 less the umask."""
    output = tmp_path / "out.txt"
    write_atomically(output, "x")
    assert stat.S_IMODE(os.stat(output).st_mode) == 0o644


def test_mutants_files_taken_temporary_name_is_skipped_not_clobbered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutants 29, 40: a temporary name that exists is never opened (``O_EXCL``); the next
    name is tried."""
    names = iter(["0" * 16, "1" * 16])
    monkeypatch.setattr(files.secrets, "token_hex", lambda n: next(names))
    taken = tmp_path / f".crossent-{'0' * 16}.tmp"
    taken.write_text("someone else's")
    output = tmp_path / "out.txt"
    write_atomically(output, "mine")
    assert taken.read_text() == "someone else's"
    assert output.read_text() == "mine"


def test_mutants_files_gives_up_after_100_taken_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutants 33, 42, 43: after 100 taken names, an ``EEXIST`` error naming the user's path."""
    tried: list[int] = []

    def same_name(n: int) -> str:
        tried.append(n)
        return "0" * 16

    monkeypatch.setattr(files.secrets, "token_hex", same_name)
    (tmp_path / f".crossent-{'0' * 16}.tmp").write_text("taken")
    output = tmp_path / "out.txt"
    with pytest.raises(
        crossent.InputError, match=_message(output, "cannot write (no free temporary name)")
    ) as info:
        write_atomically(output, "x")
    assert isinstance(info.value.__cause__, FileExistsError)
    assert info.value.__cause__.errno == errno.EEXIST
    assert tried == [8] * 100
    assert not output.exists()


def test_mutants_files_fifo_is_written_directly(tmp_path: Path) -> None:
    """Mutants 44, 45: a FIFO (not a regular file) is opened for UTF-8 text in place.

    A FIFO, not ``/dev/null``: as root, a mutant that renames over the device would replace
    the machine's ``/dev/null`` with a regular file."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("needs os.mkfifo")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_atomically(fifo, "h\u00e9")
        assert os.read(reader, 100) == "h\u00e9".encode()
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]
