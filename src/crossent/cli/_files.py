"""The ``--output`` file: never one of the inputs, and never left half written.

:func:`check_output` refuses an output that is an input (also through links), a
directory, or in a folder that does not exist, before any work is done.  The writing
itself is :func:`crossent._files.write_atomically`, the library's one file writer (the
same one ``Report.to_html(path)`` uses): atomic for a regular file, in place for a device
or FIFO, and every error names the user's path.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

import crossent

from .._files import refuse_closed_stream, refuse_read_only, refuse_special, write_atomically

__all__ = ["check_distinct", "check_output", "output_path", "write_atomically"]


def output_path(text: str | None) -> Path | None:
    """``--output`` as typed, as a path; refuses what names no file, before any work.

    ``Path`` would read ``''`` as ``.`` and drop the ``/`` of ``report.html/`` (so a
    file ``report.html`` would be written where a folder was named), and ``-``, which
    means standard input for PATH, would become a file named ``-``."""
    if text is None:
        return None
    if not text:
        raise crossent.InputError("--output: an empty file name; give the report file's name")
    if text == "-":
        raise crossent.InputError(
            "--output: '-' is not a file name (the report is a file; use --output "
            "/dev/stdout to print the HTML page, or --json/--markdown for standard output)"
        )
    if text.endswith(("/", os.sep)):
        raise crossent.InputError(
            f"--output: {text!r} ends in '/', which names a folder; give a file name"
        )
    return Path(text)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _is_standard_input(path: Path) -> bool:
    """Whether ``path`` is the file standard input reads (``report - < preds.csv``)."""
    try:
        return os.path.samestat(os.stat(path), os.fstat(sys.stdin.fileno()))
    except (OSError, ValueError, AttributeError):  # no such path; stdin closed or replaced
        return False


def check_distinct(paths: Iterable[Path]) -> None:
    """Refuse models' files of which two are one file (``a.npz ./a.npz``, a link to it,
    a hard link, or ``-`` while standard input reads it): compared with itself, a model
    showed differences of 0.0000 with intervals [0.0000, 0.0000], as if two models
    agreed exactly."""
    seen: list[Path] = []
    for path in paths:
        for earlier in seen:
            if _one_file(earlier, path):
                raise crossent.InputError(
                    f"{_named(earlier)} and {_named(path)} are the same file; compare "
                    "different models' files"
                )
        seen.append(path)


def _named(path: Path) -> str:
    return "'-' (standard input)" if str(path) == "-" else str(path)


def _one_file(a: Path, b: Path) -> bool:
    if str(a) == "-":
        return _is_standard_input(b)
    if str(b) == "-":
        return _is_standard_input(a)
    return _same_file(a, b)


def check_output(path: Path, *, inputs: Iterable[Path]) -> None:
    """Refuse an output that is one of ``inputs`` (also through links; ``-`` is the file
    standard input reads, when it is one) or a directory or read-only, or whose folder does not
    exist, or that names no file the system can open (a loop of links, a name too long);
    checked before the work, so nothing is lost; nor standard output or error when it is
    closed (``--output /dev/stderr 2>&-``: the page was lost, and "HTML report written to
    /dev/stderr" printed, exit 0)."""
    refuse_closed_stream(path)
    try:
        mode: int | None = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # said below, with the folder
        mode = None
    except OSError as exc:  # was found after the work, or as "[Errno 36] File name ..."
        raise crossent.InputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    for source in inputs:
        if str(source) == "-":
            if _is_standard_input(path):
                raise crossent.InputError(
                    f"{path}: the output is the file standard input reads ('-'); choose "
                    "another --output"
                )
        elif _same_file(path, source):
            raise crossent.InputError(
                f"{path}: the output is the input file {source}; choose another --output"
            )
    if path.is_dir():
        raise crossent.InputError(f"{path}: is a directory; --output needs a file name")
    if mode is not None:  # a socket or a disk, said before the work (a FIFO when opened)
        refuse_special(path, mode)
        refuse_read_only(path, mode)  # its owner's protection: kept, said before the work
    if path.exists():
        return
    folder = Path(os.path.realpath(path)).parent
    if not folder.is_dir():  # a dangling link's folder is its target's, not path's
        shown = folder if path.is_symlink() else path.parent
        if shown.exists():  # preds.npz/r.html: said "the folder preds.npz does not exist"
            raise crossent.InputError(f"{path}: {shown} is not a folder")
        raise crossent.InputError(f"{path}: the folder {shown} does not exist")
