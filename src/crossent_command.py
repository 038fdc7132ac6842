"""The installed ``crossent`` command's entry point, outside the ``crossent`` package.

With ``crossent.cli:console_main`` as the entry point, the script imported the package
(NumPy, SciPy and crossent's modules: 0.5-1.5 s) before any of crossent's code ran, so
Ctrl-C in that time printed Python's KeyboardInterrupt traceback.  This module imports
only :mod:`sys`, so the import of the command runs inside the command's own handling of
Ctrl-C: one line, "crossent: interrupted", exit 130.
"""

from __future__ import annotations

import sys

__all__ = ["console_main"]

_EXIT_INTERRUPTED = 128 + 2
"""``crossent.cli.EXIT_INTERRUPTED``, which cannot be imported before the package is."""


def console_main() -> None:
    """Import ``crossent.cli`` and run its ``console_main``, Ctrl-C included."""
    try:
        from crossent.cli import console_main as run
    except KeyboardInterrupt:
        if sys.stderr is not None:  # 2>&-: dropped, as the command's messages are
            print("crossent: interrupted", file=sys.stderr)
        sys.exit(_EXIT_INTERRUPTED)
    run()
