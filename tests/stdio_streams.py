"""Run ``crossent.cli.main`` in the test process with standard output on a descriptor
(``/dev/full``, a pipe whose reader is gone), as a fresh ``python -m crossent`` would see
it, and its exit as the interpreter's.

A fresh process cost about 0.5 s of CPU for ``--version`` and 1.5 s for ``report`` (the
imports, the kernels loaded from Numba's cache); the tests of a standard output that
cannot be written started 31 of them. The two parts of the process that those tests are
about are rebuilt here:

* the stream: CPython's start-up (``create_stdio`` in ``Python/pylifecycle.c``) makes
  ``sys.stdout`` a :class:`io.TextIOWrapper` over a :class:`io.BufferedWriter` over a
  :class:`io.FileIO` of descriptor 1, not line-buffered unless a terminal; unbuffered
  (``PYTHONUNBUFFERED=1``, ``python -u``) the wrapper is straight over the
  :class:`io.FileIO`, ``write_through``;
* the exit: the interpreter flushes ``sys.stdout`` (``flush_std_files``) and then
  closes it; a failure prints "Exception ignored ..." and makes the exit code 120.

Each test file that uses this keeps one case in a real process, so that the rebuilt
stream and exit stay tied to the interpreter's own.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence

import pytest

from crossent.cli import main

EXIT_FLUSH_FAILED = 120
"""CPython's exit code when flushing standard output at exit fails."""


def startup_stdout(descriptor: int, *, buffered: bool) -> io.TextIOWrapper:
    """``sys.stdout`` as CPython's start-up makes it over ``descriptor`` (not a terminal)."""
    # io.open as create_stdio calls it: a buffer of the descriptor's st_blksize (4096 for
    # a pipe and /dev/full), not io.DEFAULT_BUFFER_SIZE
    buffer = open(descriptor, "wb", buffering=-1 if buffered else 0, closefd=False)  # noqa: SIM115
    return io.TextIOWrapper(
        buffer,
        encoding="utf-8",
        errors="strict",
        line_buffering=False,
        write_through=not buffered,
    )


def main_on(
    descriptor: int,
    argv: Sequence[str],
    *,
    buffered: bool,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, str]:
    """The exit code and standard error of ``python -m crossent *argv`` with standard
    output on ``descriptor``: :func:`main` on :func:`startup_stdout`, then the
    interpreter's flush and close of ``sys.stdout`` at exit (a failure: "Exception
    ignored" on standard error and exit code 120, as CPython's)."""
    capsys.readouterr()
    saved = sys.stdout
    sys.stdout = startup_stdout(descriptor, buffered=buffered)
    try:
        code = main(list(argv))
        stream = sys.stdout
    finally:
        sys.stdout = saved
    failed: OSError | None = None
    try:
        stream.flush()
    except OSError as error:
        failed = error
    try:
        stream.close()  # (closed even where its flush fails; the descriptor is left open)
    except OSError as error:
        failed = failed or error
    if failed is not None:  # CPython: PyErr_WriteUnraisable, then exit status 120
        code = EXIT_FLUSH_FAILED
        print(f"Exception ignored in: {stream!r}\n{failed!r}", file=sys.stderr)
    return code, capsys.readouterr().err
