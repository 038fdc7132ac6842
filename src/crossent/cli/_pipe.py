"""Quiet output into a pipe whose reader has gone (``crossent demo | head -1``), and no
second failure at exit after a failed write to standard output (``> /dev/full``)."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
from collections.abc import Iterator
from typing import TextIO

__all__ = [
    "DroppedStream",
    "StandardOutputError",
    "closed_pipe_is_quiet",
    "complete_writes",
    "drop_unwritable",
]


class DroppedStream(io.StringIO):
    """Standard error when it was closed (``2>&-``): what is written to it is dropped.

    ``dropped`` tells :func:`crossent._files.refuse_closed_stream` that ``--output
    /dev/stderr`` would write the page nowhere."""

    dropped = True


class StandardOutputError(OSError):
    """A write to standard output failed (a full device, an I/O error), not a closed pipe.

    ``what`` names the text that was lost ("the report", "the demo"), so that the one-line
    error says what could not be written where, as ``--output``'s errors do:
    "standard output: cannot write the report (No space left on device)".
    """

    def __init__(self, error: OSError, what: str) -> None:
        super().__init__(error.errno, error.strerror or str(error))
        self.what = what

    @property
    def message(self) -> str:
        """The one-line error, without the "crossent: error: " prefix."""
        return f"standard output: cannot write {self.what} ({self.strerror})"


class _WholeWrites(io.RawIOBase):
    """Standard output's unbuffered file, whose every write writes all its bytes or raises.

    A file's ``write`` may write only part of its bytes: a device that fills up (or a
    ``ulimit -f``) takes what fits and refuses the rest at the next write.  Python's
    unbuffered text stream (``PYTHONUNBUFFERED=1``, or ``python -u``) drops the rest of
    a short write without a word, so the report, printed in one write, ended at the
    first 4096 bytes with exit 0.  Here the rest is written again, and the device's
    error reaches the caller.  Closing it leaves the file open: it is not its owner's.
    """

    def __init__(self, raw: io.RawIOBase) -> None:
        super().__init__()
        self._raw = raw

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    def isatty(self) -> bool:
        return self._raw.isatty()

    def write(self, data: object) -> int:
        view = memoryview(data).cast("B")  # type: ignore[arg-type]
        done = 0
        while done < len(view):
            written = self._raw.write(view[done:])
            if not written:  # None (would block) or 0: nothing more is taken
                raise OSError(errno.EIO, "the output took no more bytes")
            done += written
        return done


@contextlib.contextmanager
def complete_writes() -> Iterator[None]:
    """While the body runs, ``sys.stdout`` writes all it is given or raises (see
    :class:`_WholeWrites`): swapped only when it is Python's unbuffered stream, a text
    stream straight over its file, and put back after the body."""
    stream = sys.stdout
    if not (isinstance(stream, io.TextIOWrapper) and isinstance(stream.buffer, io.RawIOBase)):
        yield
        return
    sys.stdout = io.TextIOWrapper(
        _WholeWrites(stream.buffer),
        encoding=stream.encoding,
        errors=stream.errors,
        line_buffering=stream.line_buffering,
        write_through=True,
    )
    try:
        yield
    finally:
        sys.stdout = stream


@contextlib.contextmanager
def closed_pipe_is_quiet(stream: TextIO, *, what: str = "the output") -> Iterator[None]:
    """Run the body, then flush ``stream``; a closed pipe ends the output without a message.

    When the reader has stopped, there is nobody to tell: the output simply ends, as
    with ``cat`` or ``seq`` (and pip, coverage: no message, exit 0).  Python would flush
    ``stream`` again at exit and print "Exception ignored ... BrokenPipeError", so the
    descriptor is pointed at the null device first (the recipe of the Python
    documentation, "Note on SIGPIPE").  Any other failed write (``> /dev/full``) is
    raised as :class:`StandardOutputError` naming ``what`` was lost.
    """
    try:
        yield
        stream.flush()
    except BrokenPipeError:
        _to_null(stream)
    except StandardOutputError:
        raise
    except OSError as error:  # only writes to stream run here: the body only prints
        raise StandardOutputError(error, what) from error


def drop_unwritable(stream: TextIO) -> None:
    """After an error: if ``stream`` still cannot be flushed (a full device), point it at
    the null device, so that Python's flush at exit neither prints "Exception ignored
    ... OSError" after the one-line error nor turns the exit code into 120."""
    try:
        stream.flush()
    except OSError:
        _to_null(stream)


def _to_null(stream: TextIO) -> None:
    """Point ``stream``'s descriptor at the null device: what is left unwritten goes there."""
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, descriptor)
    finally:
        os.close(null)
