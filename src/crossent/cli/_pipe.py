"""Quiet output into a pipe whose reader has gone (``crossent demo | head -1``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TextIO

__all__ = ["closed_pipe_is_quiet"]


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
        try:
            descriptor = stream.fileno()
        except (AttributeError, OSError, ValueError):
            return
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, descriptor)
        finally:
            os.close(null)
