"""Ctrl-C while ``python -m crossent`` imports the package: the command's one line.

``python -m crossent`` imports the package (NumPy, SciPy and crossent's modules: 0.5-1.5
s) before ``crossent/__main__.py`` runs, so no handler of the command's can be in place
while it does; Ctrl-C in that time printed Python's KeyboardInterrupt traceback (the
installed ``crossent`` script enters through ``crossent_command``, which imports the
package inside its handler).  The package's ``__init__`` calls :func:`exit_if_command`
when its import is interrupted: under ``python -m crossent`` that is "crossent:
interrupted" and exit 130, as the command; anywhere else (a program importing crossent)
it returns, and the KeyboardInterrupt goes on as it came.  This module imports only
:mod:`sys`.
"""

from __future__ import annotations

import sys
from typing import NoReturn

__all__ = ["EXIT_INTERRUPTED", "exit_if_command", "interrupted", "run_as_command"]

EXIT_INTERRUPTED = 128 + 2
"""The command's exit status after Ctrl-C (``crossent.cli.EXIT_INTERRUPTED``)."""


def interrupted() -> NoReturn:
    """The command's line for Ctrl-C on standard error (none where it is closed, ``2>&-``)
    and exit :data:`EXIT_INTERRUPTED`."""
    if sys.stderr is not None:
        print("crossent: interrupted", file=sys.stderr)
    sys.exit(EXIT_INTERRUPTED)


def run_as_command() -> bool:
    """Whether this process is ``python -m crossent`` locating its ``__main__``.

    While ``-m`` locates the module (importing its package), ``sys.argv[0]`` is
    ``"-m"``; the interpreter's own arguments, ``sys.orig_argv``, then name the module
    (:func:`_module_run`).  ``python -m other`` whose package imports crossent is not the
    command.
    """
    if not sys.argv or sys.argv[0] != "-m":
        return False
    return _module_run(list(getattr(sys, "orig_argv", []))[1:]) == "crossent"


def _module_run(arguments: list[str]) -> str | None:
    """The module of ``-m`` in the interpreter's ``arguments``: ``-m crossent``,
    ``-mcrossent``, ``-Im crossent``, after options such as ``-X dev`` or ``-Wignore``
    (whose values are skipped); None before ``-c``, a script or ``--``."""
    position = 0
    while position < len(arguments):
        argument = arguments[position]
        position += 1
        if argument == "--check-hash-based-pycs":  # (takes a value)
            position += 1
            continue
        if argument.startswith("--") and argument != "--":
            continue
        if not argument.startswith("-") or argument in ("-", "--"):
            return None
        for offset, letter in enumerate(argument[1:], start=2):
            if letter in "mXWc":
                value = argument[offset:]
                if not value:
                    value = arguments[position] if position < len(arguments) else ""
                    position += 1
                if letter == "m":
                    return value
                if letter == "c":
                    return None
                break
    return None


def exit_if_command() -> None:
    """:func:`interrupted` under ``python -m crossent``; otherwise nothing (the caller
    re-raises the KeyboardInterrupt)."""
    if run_as_command():
        interrupted()
