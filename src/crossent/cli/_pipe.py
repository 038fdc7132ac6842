"""Quiet output into a pipe whose reader has gone (``crossent demo | head -1``), and no
second failure at exit after a failed write to standard output (``> /dev/full``)."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from typing import TextIO

__all__ = ["DroppedStream", "StandardOutputError", "closed_pipe_is_quiet", "drop_unwritable"]


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
