"""Issue 11: one file writer for ``Report.to_html(path)`` and the CLI's ``--output``.

The report's HTML writer was a second, weaker copy of the CLI's: it renamed over a FIFO or
device, replaced a symbolic link by a regular file, created the page with mode 0o600 and
let a raw ``OSError`` (naming the temporary file) escape.  Both now call
:func:`crossent._files.write_atomically`; these tests go through ``delivered``, the
function behind ``Report.to_html(path)`` and ``ReportComparison.to_html(path)`` (no
matplotlib needed).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import crossent
from crossent._report._html import delivered

PAGE = "<!doctype html><p>r\u00e9port</p>\n"


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_issue11_report_and_cli_share_one_writer() -> None:
    import crossent._report._html as html_module
    import crossent.cli._files as cli_files
    from crossent._files import write_atomically

    assert html_module.write_atomically is write_atomically
    assert cli_files.write_atomically is write_atomically


def test_issue11_to_html_writes_a_fifo_in_place(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("needs os.mkfifo")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert delivered(PAGE, fifo) == PAGE
        assert os.read(reader, 1000) == PAGE.encode()
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_issue11_to_html_through_a_link_replaces_its_target(tmp_path: Path) -> None:
    real = tmp_path / "real.html"
    real.write_text("old")
    link = tmp_path / "link.html"
    link.symlink_to(real)
    delivered(PAGE, str(link))
    assert link.is_symlink()
    assert real.read_text(encoding="utf-8") == PAGE


def test_issue11_to_html_new_page_has_the_umasks_mode(tmp_path: Path, umask_022: None) -> None:
    page = tmp_path / "r.html"
    delivered(PAGE, page)
    assert stat.S_IMODE(os.stat(page).st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def test_issue11_to_html_write_error_names_the_path_not_the_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(source: object, target: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(source))

    monkeypatch.setattr(os, "replace", fail)
    page = tmp_path / "r.html"
    with pytest.raises(crossent.InputError) as info:
        delivered(PAGE, page)
    assert str(info.value) == f"{page}: cannot write (No space left on device)"
    assert list(tmp_path.iterdir()) == []
