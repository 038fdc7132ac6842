"""Quiet output into a pipe whose reader has gone (``crossent demo | head -1``), and no
second failure at exit after a failed write to standard output (``> /dev/full``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TextIO

__all__ = ["closed_pipe_is_quiet", "drop_unwritable"]


@contextlib.contextmanager
def closed_pipe_is_quiet(stream: TextIO) -> Iterator[None]:
    """Run the body, then flush ``stream``; a closed pipe ends the output without a message.

    When the reader has stopped, there is nobody to tell: the output simply ends, as
    with ``cat`` or ``seq``.  Python would flush ``stream`` again at exit and print
    "Exception ignored ... BrokenPipeError", so the descriptor is pointed at the null
    device first (the recipe of the Python documentation, "Note on SIGPIPE").
    """
    try:
        yield
        stream.flush()
    except BrokenPipeError:
        _to_null(stream)


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
