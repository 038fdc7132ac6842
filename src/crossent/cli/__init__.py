"""The ``crossent`` command: a thin layer over the public API.

``main(argv) -> int`` is the testable entry point; ``console_main`` is the installed
script.  Exit codes: 0 ok; 2 usage or input error (a one-line message on stderr, no
traceback); 3 an internal error (a short message asking for a report; the traceback
only with ``--debug``).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

import crossent

from ._demo import run_demo

__all__ = ["console_main", "main"]

_EXIT_OK = 0
_EXIT_USAGE = 2
_EXIT_INTERNAL = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossent",
        description="Exact cross-entropy and its information-theory family.",
    )
    parser.add_argument("--version", action="version", version=f"crossent {crossent.__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an internal error"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "demo",
        help="print the seeds' worked examples, computed by the library",
        description="Surprisal, entropy, cross-entropy, KL, BCE, softmax and perplexity, "
        "step by step, with the exact values beside the seeds' clipped ones.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 for --help
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return _EXIT_USAGE
    try:
        if args.command == "demo":
            run_demo(sys.stdout)
        return _EXIT_OK
    except crossent.CrossentError as exc:
        print(f"crossent: error: {exc}", file=sys.stderr)
        return _EXIT_USAGE
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        print(
            f"crossent: internal error ({type(exc).__name__}: {exc}); please report it "
            "with the command you ran (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return _EXIT_INTERNAL


def console_main() -> None:
    """Entry point of the installed ``crossent`` script."""
    sys.exit(main())
