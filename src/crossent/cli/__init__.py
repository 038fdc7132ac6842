"""The ``crossent`` command: a thin layer over the public API.

``main(argv) -> int`` is the testable entry point; ``console_main`` is the installed
script.  Commands: ``report`` (the main job: a model's predictions, or the built-in
example), ``explain`` (step-by-step tables for learners) and ``demo`` (the tutorial
examples).

Exit codes: 0 ok; 1 a gate failed (``--max-ece``, ``--max-nll``); 2 usage, input or
file error, or a closed standard output (one or two lines on stderr, no traceback); 3
an internal error (a short message asking for a report; the traceback only with
``--debug``); 130 interrupted (Ctrl-C) and 143 terminated (SIGTERM), after removing
every temporary file.  Output files are written atomically, so a failed run never
leaves a partial file, and the output is never the input.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import json
import math
import os
import signal
import sys
import traceback
import typing
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

if typing.TYPE_CHECKING:
    from _typeshed import SupportsWrite

import crossent

from ._builtin import builtin_dataset
from ._columns import TableColumns
from ._demo import TOPICS as _DEMO_TOPICS
from ._demo import run_demo, topic_name
from ._deps import require
from ._explain import class_id, run_explain
from ._files import check_distinct, check_output, output_path, write_atomically
from ._messages import in_file_terms, json_ready, printable
from ._numbers import ascii_digits, decimal
from ._pipe import (
    DroppedStream,
    StandardOutputError,
    closed_pipe_is_quiet,
    complete_writes,
    drop_unwritable,
)
from ._render import (
    render_comparison_markdown,
    render_comparison_terminal,
    render_markdown,
    render_terminal,
)
from ._report import build_report, validation_options
from ._sources import formats_help, open_dataset

__all__ = [
    "EXIT_GATE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "console_main",
    "main",
    "render_html",
]

EXIT_OK = 0
EXIT_GATE = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 128 + 2
EXIT_TERMINATED = 128 + 15

_PROGRESS_ENTRIES = 20_000_000
"""Inputs with at least this many entries (rows x classes) show a progress bar."""


def _threshold(text: str) -> float:
    """A gate's threshold: a finite number >= 0 (every comparison with NaN fails, the JSON
    report records the threshold, and the calibration error and the NLL are never
    negative, so a negative threshold would fail every report).

    ``crossent.report`` checks ``max_ece``/``max_nll`` again, as numbers; this check stays
    here because it reads the text as typed, at parse time, and words the error as
    argparse does ("argument --max-ece: ... got 'inf'"), which the library cannot."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    try:
        value = decimal(text)  # 1e-400 was the threshold 0
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(
            f"a threshold must be a finite number (not NaN or infinite); got {text!r}"
        )
    if value < 0:
        raise argparse.ArgumentTypeError(
            "a threshold must be >= 0 (the calibration error and the NLL are never "
            f"negative, so every report would fail); got {text!r}"
        )
    return value


def _number(text: str) -> float:
    """A number option of ``explain`` (``--temperature``, ``--smoothing``): a float64 that
    means what was typed (:func:`._numbers.decimal`: ``1e-400`` is refused, not 0)."""
    try:
        float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    try:
        return decimal(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_MAX_RESAMPLES = 1_000_000
"""``crossent.report``'s bound on ``resamples`` (a test checks that the two agree),
checked here at parse time so that a typo is refused before the input is read."""


def _resamples(text: str) -> int:
    """``--resamples``: an integer in ``[1, 1_000_000]``."""
    try:
        value = int(ascii_digits(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            str(exc) if not text.isascii() else f"not an integer: {text!r}"
        ) from None
    if not 1 <= value <= _MAX_RESAMPLES:
        raise argparse.ArgumentTypeError(
            f"must be an integer in [1, {_MAX_RESAMPLES:_}] (each resample recomputes the "
            f"calibration error); got {text!r}"
        )
    return value


_MAX_BINS = 2**20
"""``crossent.report``'s bound on ``bins`` (a test checks that the two agree), checked
here so that the error names ``--bins`` as typed, not the library's ``bins``."""


def _count(low: int, wanted: str, high: int | None = None, why: str = "") -> Callable[[str], int]:
    """An integer option's parser: at least ``low`` (and at most ``high``, for the reason
    ``why``), refused by name and value as typed."""

    def parse(text: str) -> int:
        try:
            ascii_digits(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        value = int(text)  # a ValueError reads "invalid int value: 'abc'", as before
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {wanted}; got {text!r}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high:_}{why}; got {text!r}")
        return value

    parse.__name__ = "int"  # argparse names the type in that message by it
    return parse


_NUMBER_OPTIONS = frozenset({"--p", "--q", "--logits", "--y", "--temperature", "--smoothing"})
"""``explain``'s options whose value is a number or a comma-separated list of them."""


def _negative_values_attached(argv: Sequence[str] | None) -> list[str]:
    """``explain``'s command line with ``--logits -1,2`` written ``--logits=-1,2``.

    argparse takes a word that begins with ``-`` for an option unless it looks like
    ``-1`` or ``-1.5``, so ``--logits -1,2`` (or ``--temperature -1e-3``) failed with
    "expected one argument"; no option of ``crossent`` begins with ``-`` and a digit or
    a point, so such a word after one of :data:`_NUMBER_OPTIONS` is its value; so is
    ``-inf`` or ``-nan`` (``--logits -inf,2``), for the checks that name them.
    """
    words = list(sys.argv[1:] if argv is None else argv)
    commands = [word for word in words if not word.startswith("-")]
    if not commands or commands[0] != "explain":
        return words
    attached: list[str] = []
    for word in words:
        if (
            attached
            and attached[-1] in _NUMBER_OPTIONS
            and len(word) > 1
            and word[0] == "-"
            and (word[1].isdigit() or word[1] == "." or word[1:4].lower() in ("inf", "nan"))
        ):
            attached[-1] = f"{attached[-1]}={word}"
        else:
            attached.append(word)
    return attached


class _Once(argparse._StoreAction):
    """An option's value, given at most once: argparse keeps the last of ``--seed 1
    --seed 2`` silently, so a value set early in a long command line (or by a wrapper
    script) was dropped without a word; here the second is a usage error naming both."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if self.option_strings:  # positionals (PATH) are argparse's to collect
            given: set[str] = namespace.__dict__.setdefault("_given_once", set())
            if self.dest in given:
                first = getattr(namespace, self.dest)
                parser.error(
                    f"argument {option_string}: given twice ({first} and then {values}); "
                    "give it once"
                )
            given.add(self.dest)
        setattr(namespace, self.dest, values)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error: argparse prints the whole usage first (eleven
    lines for ``report``, the error last); here the error names the argument and points
    to ``--help``.  Subcommands' parsers are of this class too (``add_subparsers``).
    An option that takes a value may be given once (:class:`_Once`).  An option must be
    spelled in full (``allow_abbrev=False``): ``--se`` taken for ``--seed`` would change
    meaning silently the day another option starting ``--se`` is added.  With
    ``intermixed``, the parser's PATHs and options may come in any order
    (``report a.csv --json b.csv``: argparse's ``nargs="*"`` stops at the first option
    and refused ``b.csv`` as unrecognized)."""

    def __init__(self, *args: Any, intermixed: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.register("action", None, _Once)  # argparse's default action, "store"
        self._intermixed = intermixed
        self._intermixing = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """argparse's, or with ``intermixed`` its ``parse_known_intermixed_args`` (which
        calls this method twice: options first, then the PATHs left over)."""
        if not self._intermixed or self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False

    def error(self, message: str) -> NoReturn:
        self.exit(
            EXIT_USAGE, f"{self.prog}: error: {printable(message)} (see {self.prog} --help)\n"
        )

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        """argparse's, less its silence on a failed write (``--help > /dev/full`` exited
        0 with the text lost); a closed pipe is still quiet (:func:`main`)."""
        if message:
            (file or sys.stderr).write(message)


class _Version(argparse.Action):
    """``--version``: argparse's version action, less its version string built with the
    parser: ``crossent.__version__`` reads the package metadata (``importlib.metadata``,
    about 20 ms), which only this option needs (issue 13: ``crossent --help`` time)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS) -> None:
        super().__init__(
            option_strings,
            dest,
            nargs=0,
            default=argparse.SUPPRESS,
            help="show program's version number and exit",
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        parser._print_message(f"crossent {crossent.__version__}\n", sys.stdout)
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="crossent",
        description="Exact cross-entropy and its information-theory family.",
    )
    parser.add_argument("--version", action=_Version)
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an internal error"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    report = commands.add_parser(
        "report",
        intermixed=True,
        help="evaluate a model's predictions (or the built-in example)",
        description="Accuracy, NLL, Brier score, calibration error with its interval and "
        "definition, the smooth calibration error, temperature scaling, per-class "
        "cross-entropy, accuracy and calibration, and the most surprising examples. "
        f"{formats_help()} Several PATHs: the models side by side, with paired NLL and Brier "
        "differences against the first. Without PATH: the built-in example (softmax "
        "regression on scikit-learn's digits, its test split).",
    )
    report.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="one file, or several models' files on the same labels to compare (the first "
        "is the baseline); '-' reads a CSV from standard input",
    )
    form = report.add_mutually_exclusive_group()
    form.add_argument(
        "--logits",
        action="store_true",
        help="a table's columns, a .npy, or a .pt's single tensor or (predictions, labels) "
        "pair hold logits",
    )
    form.add_argument(
        "--log-probs",
        action="store_true",
        help="a table's columns, a .npy, or a .pt's single tensor or (predictions, labels) "
        "pair hold log-probabilities",
    )
    report.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        help="dtype of a CSV's prediction columns (default float64; use float32 for a CSV "
        "written from float32 values, so that float32's tolerance applies)",
    )
    report.add_argument(
        "--label-column", metavar="NAME", help="a table's label column (default 'label')"
    )
    report.add_argument(
        "--id-column",
        metavar="NAME",
        help="a table column identifying rows (not a class; shown for the surprising rows; "
        "a different id in every row, an id named twice is refused; "
        "a CSV's ids are numbers only when every cell is its number's text, else all text "
        "as written: 007 stays 007). "
        "A pandas index saved with the table is taken as the ids when it is unambiguous "
        "(to_csv's unnamed first column, Parquet's pandas metadata, or a first column "
        "'Unnamed: 0' holding the row numbers 0, 1, 2, ...); a named one (df.index.name = "
        "'id') is refused as a class until named here or listed in --class-columns",
    )
    report.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help="the labels of predictions stored alone (a .npy, or a .pt holding one tensor or "
        "a dict without 'labels'): a .npy of class ids; an .npz, .safetensors or .pt/.pth "
        "whose array named 'labels' holds them, or holding that one array only; or a table "
        "whose --label-column holds them",
    )
    report.add_argument(
        "--class-columns",
        metavar="A,B,...",
        help="a table's class columns, in class order (default: every other column); a "
        "name holding a comma in double quotes, as in the CSV header: '\"a,b\",c'. A "
        "Parquet/Arrow column of lists of numbers (list<double>, fixed_size_list<float, K>) "
        "is read as the classes 0..K-1 (named NAME[0]..NAME[K-1]) when it is the only "
        "class column",
    )
    report.add_argument(
        "--integer-labels",
        choices=("names", "positions"),
        help="how a table's integer labels name the classes: 'positions' reads the label k "
        "as the k-th class column (from 0), 'names' as the class column named k. Needed "
        "only when the class columns are all named by integers other than 0..K-1 in order "
        "(scikit-learn's classes_ 1,2,3 or -1,1): such labels could be either, and are "
        "refused (exit 2) until this says which; columns named 0..K-1, string class names "
        "and string labels need no flag. A Parquet/Arrow string label names a class column, "
        "digits too ('2' is the column named 2, never the third); a CSV cell of digits is an "
        "integer label",
    )
    output = report.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    output.add_argument(
        "--markdown",
        action="store_true",
        help="print a compact Markdown summary (for a CI job summary or a PR comment)",
    )
    report.add_argument(
        "--output",
        metavar="FILE",
        help="also write the report to FILE, in the format its extension names: .json "
        "(the --json object), .md or .markdown (the --markdown summary), .txt (the text "
        "summary printed without --json, 80 columns), any other name "
        "(.html, /dev/stdout) the HTML page with figures; --json and --markdown still "
        "choose what is printed on standard output",
    )
    report.add_argument(
        "--max-ece",
        type=_threshold,
        metavar="X",
        help="exit 1 if ECE > X (X as its nearest float64, as a CSV's cells are read: a "
        "subnormal such as 4e-320 is kept, with fewer digits; 1e-400 is refused)",
    )
    report.add_argument("--max-nll", type=_threshold, metavar="X", help="exit 1 if NLL (nats) > X")
    report.add_argument(
        "--temperature-from",
        type=Path,
        action="append",
        metavar="VAL",
        help="held-out temperature scaling (Guo et al. 2017): fit the NLL-optimal "
        "temperature on the validation file VAL (read as PATH is: the same form flags, "
        "--dtype, columns and label options; VAL must hold its own labels, --labels is "
        "PATH's only) and report PATH's NLL, Brier score and calibration error at it beside "
        "the uncalibrated ones. Once, with one PATH: VAL holds that model's outputs on "
        "held-out rows, so a comparison (several PATHs) is refused; report each model "
        "with its own VAL instead (crossent report A --temperature-from VAL_A, then B "
        "with VAL_B). VAL must be another file than PATH, with PATH's classes in PATH's "
        "form (an .npz array's name says its form; log-probabilities serve logits)",
    )
    report.add_argument(
        "--bins",
        type=_count(
            1,
            "a positive integer",
            _MAX_BINS,
            " (2**20: each bin needs several examples to estimate its hit rate)",
        ),
        help="calibration bins (default 15)",
    )
    report.add_argument(
        "--binning", choices=("uniform", "quantile"), help="equal-width (default) or equal-mass"
    )
    report.add_argument(
        "--scope",
        choices=("top-label", "class-wise", "positive-class"),
        help="what is binned (default top-label; positive-class for one-column binary input)",
    )
    report.add_argument("--norm", choices=("l1", "l2", "max"), help="gap norm (default l1)")
    report.add_argument(
        "--debias", action="store_true", default=None, help="debiased L2 estimator (--norm l2)"
    )
    report.add_argument(
        "--preset",
        choices=sorted(crossent.CALIBRATION_PRESETS),
        help="another library's calibration convention (explicit options override it)",
    )
    report.add_argument(
        "--renormalize",
        action="store_true",
        help="divide each row of probabilities by its sum (reports the largest correction)",
    )
    report.add_argument(
        "--resamples",
        type=_resamples,
        default=1000,
        help=f"bootstrap resamples, at most {_MAX_RESAMPLES:_} (default 1000)",
    )
    report.add_argument(
        "--seed",
        type=_count(0, "a non-negative integer"),
        default=0,
        help="bootstrap and fold seed",
    )
    report.add_argument(
        "--top",
        type=_count(0, "a non-negative integer"),
        default=10,
        help="most surprising examples shown",
    )

    explain = commands.add_parser(
        "explain",
        help="step-by-step cross-entropy tables for learners",
        description="crossent explain --p 0.9,0.1 (entropy) | --p 1,0,0 --q 0.7,0.2,0.1 [--kl] | "
        "--logits 2,1,0.1 "
        "--label 0 [--smoothing EPS | --hinge] | --binary --y 1 --p 0.9; add --bits for bits "
        "and --temperature T to reshape (with --p/--q or --logits, not with --binary, --kl or "
        "--hinge). Numbers (ASCII digits 0-9) are read as float64, as a CSV's cells "
        "are: a subnormal one (below 2.2e-308, such as 1e-310) is kept as its nearest "
        "float64, with fewer significant digits (1e-320 is 9.99989e-321); one that "
        "float64 cannot hold (1e-400, 1e309) is refused. Needs only the base install.",
    )
    explain.add_argument(
        "--p",
        help="true distribution P (alone: its entropy H(P)); with --binary, the predicted "
        "probability p of class 1",
    )
    explain.add_argument("--q", help="predicted distribution Q")
    explain.add_argument("--logits", help="logits z (softmax gives the prediction)")
    explain.add_argument("--label", type=class_id, help="the true class, with --logits")
    explain.add_argument("--binary", action="store_true", help="binary cross-entropy of --y, --p")
    explain.add_argument("--y", help="the binary label (0 or 1, or a soft value)")
    explain.add_argument(
        "--temperature",
        type=_number,
        metavar="T",
        help="temperature T > 0, with --p/--q or --logits (not with --binary, --kl or --hinge)",
    )
    explain.add_argument("--bits", action="store_true", help="in bits instead of nats")
    explain.add_argument(
        "--smoothing",
        type=_number,
        metavar="EPS",
        help="label smoothing of the target, with --logits",
    )
    explain.add_argument(
        "--hinge", action="store_true", help="hinge loss beside cross-entropy, with --logits"
    )
    explain.add_argument("--kl", action="store_true", help="D(P||Q) and D(Q||P), with --p/--q")
    explain.add_argument(
        "--all",
        action="store_true",
        help="every row of a table; by default at most 20: the largest contributions "
        "(with the label's row), shown in class order, and a line counting the rest (the "
        "totals are over every row)",
    )

    demo = commands.add_parser(
        "demo",
        help="print the tutorial examples, computed by the library",
        description="The tutorial examples step by step (one TOPIC, or all), with the exact "
        "values beside the clipped ones that tutorial code prints.",
    )
    demo.add_argument(
        "topic",
        nargs="?",
        type=topic_name,
        choices=list(_DEMO_TOPICS),
        metavar="TOPIC",
        help=f"one of {', '.join(_DEMO_TOPICS)}, in any case, _ for - (default: all)",
    )
    return parser


def _console(*, stderr: bool = False, file: Any = None, width: int | None = None) -> Any:
    """A rich console that prints text as it is: paths, column names and row ids come from
    the user's files, and ``[/b]`` in one is text, not console markup (which would end the
    run, or drop ``[bold]`` from a path and so name a file that does not exist)."""
    Console = require("rich.console", "printing tables", extra="cli").Console

    class _Printable(Console):  # type: ignore[misc, valid-type]
        """Every string printed, a table's cells and titles included, with its control
        characters escaped (:func:`._messages.printable`): column names, row ids and
        paths come from the user's files, and an escape sequence in one reached the
        terminal."""

        def render_str(self, text: str, **options: Any) -> Any:
            return super().render_str(printable(text), **options)

    if file is None:
        file = sys.stderr if stderr else sys.stdout
    plain = {} if width is None else {"width": width, "color_system": None, "force_terminal": False}
    console = _Printable(file=file, highlight=False, markup=False, soft_wrap=True, **plain)
    # rich exits 1 on a closed pipe, the code of a failed gate: let the BrokenPipeError
    # reach closed_pipe_is_quiet instead, which ends the output as demo's and explain's
    console.on_broken_pipe = _raise_broken_pipe
    return console


def _raise_broken_pipe() -> NoReturn:
    raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def _progress_factory(enabled: bool) -> tuple[Callable[[str, int], Callable[[int], None]], Any]:
    """A ``progress(label, total) -> advance`` function, and the rich Progress (or None)."""
    if not enabled:
        return (lambda label, total: lambda step: None), None
    from rich.progress import Progress

    bar = Progress(console=_console(stderr=True), transient=True)

    def progress(label: str, total: int) -> Callable[[int], None]:
        task = bar.add_task(label, total=total)
        return lambda step: bar.advance(task, step)

    return progress, bar


def render_html(report: crossent.Report | crossent.ReportComparison) -> str:
    """The HTML page of a report or a comparison (the library's ``to_html``)."""
    return report.to_html()


_OUTPUT_FORMATS = {
    ".json": "JSON",
    ".md": "Markdown",
    ".markdown": "Markdown",
    ".txt": "Text",
}
"""``--output``'s format by its extension (any case); any other name is HTML.  Main
wrote the HTML page into ``r.json`` and said "HTML report written to r.json", and into
``r.txt`` too."""

_TEXT_WIDTH = 80
"""Columns of a ``.txt`` ``--output``: the terminal summary's width when standard output
is a file (rich's default), whatever the terminal or ``COLUMNS``."""


def _output_format(path: Path) -> str:
    """``"JSON"``, ``"Markdown"``, ``"Text"`` or ``"HTML"``: what ``--output PATH``
    holds."""
    return _OUTPUT_FORMATS.get(path.suffix.lower(), "HTML")


def _check_output(path: Path, inputs: list[Path]) -> None:
    """``--output``'s checks, before the work; matplotlib only for the HTML page, rich
    for the text summary."""
    check_output(path, inputs=inputs)
    shown = _output_format(path)
    if shown == "HTML":
        require("matplotlib.figure", "--output (the HTML report's figures)", extra="cli")
    elif shown == "Text":
        require("rich.console", "--output (the text summary)", extra="cli")


def _json_text(payload: dict[str, Any]) -> str:
    """The JSON report's text, for ``--json`` and a ``.json`` ``--output`` alike."""
    return json.dumps(json_ready(payload), indent=2, allow_nan=False)


def _write_output(path: Path, report: crossent.Report | crossent.ReportComparison) -> None:
    """Write ``--output`` (atomically) in the format its extension names: the same JSON
    and Markdown as ``--json`` and ``--markdown`` print, or the HTML page."""
    shown = _output_format(path)
    if shown == "JSON":
        text = _json_text(report.to_dict()) + "\n"
    elif shown == "Markdown":
        markdown = (
            render_markdown(report)
            if isinstance(report, crossent.Report)
            else render_comparison_markdown(report)
        )
        text = printable(markdown, keep="\n") + "\n"
    elif shown == "Text":
        text = _render_text(report)
    else:
        text = render_html(report)
    write_atomically(path, text)


def _render_text(report: crossent.Report | crossent.ReportComparison) -> str:
    """The plain-text summary ``crossent report`` prints on a terminal (no colour or
    style codes), :data:`_TEXT_WIDTH` columns wide: a ``.txt`` ``--output``'s text."""
    buffer = io.StringIO()
    console = _console(file=buffer, width=_TEXT_WIDTH)
    if isinstance(report, crossent.Report):
        render_terminal(report, console)
    else:
        render_comparison_terminal(report, console)
    return buffer.getvalue()


def _columns(args: argparse.Namespace) -> TableColumns:
    try:
        return TableColumns.parse(
            args.label_column, args.id_column, args.class_columns, args.integer_labels
        )
    except ValueError as exc:
        raise crossent.InputError(str(exc)) from exc


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The calibration and report options of the command line, for crossent.report."""
    return {
        "bins": args.bins,
        "binning": args.binning,
        "scope": args.scope,
        "norm": args.norm,
        "debias": args.debias,
        "preset": args.preset,
        "renormalize": args.renormalize,
        "resamples": args.resamples,
        "seed": args.seed,
        "top": args.top,
        "max_ece": args.max_ece,
        "max_nll": args.max_nll,
    }


def _run_report(args: argparse.Namespace) -> int:
    args.output = output_path(args.output)
    if sum(str(path) == "-" for path in args.paths) > 1:  # the second read finds nothing
        raise crossent.InputError("'-' (a CSV on standard input) can be given only once")
    if args.temperature_from is not None:
        _check_validation(args)
    if len(args.paths) > 1:
        return _run_comparison(args)
    console: Any = None if args.json or args.markdown else _console()
    form = "logits" if args.logits else "log_probs" if args.log_probs else None
    inputs = [path for path in [*args.paths, args.labels, args.temperature_from] if path]
    if args.output is not None:
        _check_output(args.output, inputs)
    if not args.paths:
        _refuse_file_options(args, form)
        dataset = builtin_dataset()
    else:
        dataset = open_dataset(
            args.paths[0],
            form=form,
            dtype=args.dtype,
            columns=_columns(args),
            labels=args.labels,
        )
    try:
        validation = None if args.temperature_from is None else _validation(args, form, dataset)
        try:
            report = _evaluate(dataset, args, validation)
        finally:
            if validation is not None:
                validation.close()
        if args.output is not None:
            _write_output(args.output, report)
    finally:
        dataset.close()
    # a reader gone: the gates still decide
    with closed_pipe_is_quiet(sys.stdout, what="the report"):
        if args.json:
            print(_json_text(report.to_dict()))
        elif args.markdown:
            print(printable(render_markdown(report), keep="\n"))
        else:
            render_terminal(report, console)
            if args.output is not None:
                console.print(f"{_output_format(args.output)} report written to {args.output}")
    return _gates(report.payload)  # read only: no copy of the per-class table


def _refuse_file_options(args: argparse.Namespace, form: str | None) -> None:
    """Options that describe a file, given without one (the built-in example has none)."""
    if form is not None or args.dtype is not None:
        raise crossent.InputError("--logits, --log-probs and --dtype need a PATH")
    for option, value in (
        ("--labels", args.labels),
        ("--label-column", args.label_column),
        ("--id-column", args.id_column),
        ("--class-columns", args.class_columns),
        ("--integer-labels", args.integer_labels),
    ):
        if value is not None:
            raise crossent.InputError(f"{option} needs a PATH (a table to read)")


def _check_validation(args: argparse.Namespace) -> None:
    """``--temperature-from VAL``: once, with exactly one PATH, and VAL another file than
    it (a temperature fitted on the reported rows is the report's own ``temperature``);
    ``args.temperature_from`` becomes that one VAL.

    Refused, saying what to run instead: several PATHs (VAL is one model's outputs on
    held-out rows: no one file fits every model's temperature, and a comparison has no
    held-out columns to show them) and the option given twice (argparse kept the last
    one, silently: ``report A --temperature-from VA --temperature-from VB`` fitted on VB
    alone)."""
    given = args.temperature_from
    commands = "; ".join(
        f"crossent report {path} --temperature-from VAL_{chr(65 + i)}"
        for i, path in enumerate(args.paths[:3])
    )
    if len(args.paths) > 1:
        raise crossent.InputError(
            f"--temperature-from takes one PATH ({len(args.paths)} given): each model's "
            "temperature is fitted on that model's own held-out outputs, so report each "
            f"with its own validation file: {commands}" + ("; ..." if len(args.paths) > 3 else "")
        )
    if len(given) > 1:
        raise crossent.InputError(
            f"--temperature-from given {len(given)} times ({', '.join(map(str, given))}); "
            "give it once: the validation file of PATH's model"
        )
    if not args.paths:
        raise crossent.InputError(
            "--temperature-from needs a PATH (the built-in example has no validation file)"
        )
    args.temperature_from = given[0]
    path, val = args.paths[0], args.temperature_from
    same = str(path) == str(val)
    if not same and str(path) != "-" and str(val) != "-":
        with contextlib.suppress(OSError):  # an unreadable VAL is the reader's error
            same = os.path.samefile(path, val)
    if same:
        raise crossent.InputError(
            f"--temperature-from {val}: the validation file is PATH itself; fit the "
            "temperature on held-out rows (the report's own temperature block is the fit "
            "on PATH's rows)"
        )


def _validation(args: argparse.Namespace, form: str | None, dataset: Any) -> Any:
    """The validation file of ``--temperature-from``, opened as PATH was (its own labels)."""
    val = args.temperature_from
    try:
        validation = open_dataset(val, form=form, dtype=args.dtype, columns=_columns(args))
    except crossent.InputError as exc:
        own = (
            " (VAL must hold its own labels: --labels is PATH's)" if "--labels" in str(exc) else ""
        )
        raise crossent.InputError(f"--temperature-from: {exc}{own}") from exc
    refusal = _validation_layout(validation, dataset)
    if refusal:
        validation.close()
        raise crossent.InputError(f"--temperature-from {val}: {refusal}")
    if validation.class_names != dataset.class_names:
        validation.close()
        shown = ", ".join(validation.class_names[:8])
        raise crossent.InputError(
            f"--temperature-from {val}: its {validation.classes} classes ({shown}"
            f"{', ...' if validation.classes > 8 else ''}) are not PATH's "
            f"{dataset.classes} ({', '.join(dataset.class_names[:8])}"
            f"{', ...' if dataset.classes > 8 else ''})"
        )
    return validation


_FORM_WORDS = {
    "probs": "probabilities ('probs')",
    "logits": "logits ('logits')",
    "log_probs": "log-probabilities ('log_probs')",
}


def _validation_layout(validation: Any, dataset: Any) -> str:
    """Why VAL's predictions cannot be read as PATH's ("" when they can).

    The temperature is fitted on VAL in PATH's form (``crossent.report``'s
    ``temperature_from``), but a self-describing file (an ``.npz`` array's name) states
    its own form: read in PATH's, a VAL of ``probs`` beside PATH's ``logits`` fitted
    :math:`\\mathrm{softmax}(p / T)` without a word (T = 0.33 for the probabilities'
    1.09).  Log-probabilities are logits, so a VAL of them serves PATH's logits exactly.
    A one-column VAL (P(label = 1)) beside two class columns (or the reverse) was said to
    have "1 classes (0)"."""
    one_val, one_path = validation.classes == 1, dataset.classes == 1
    if one_val != one_path:
        columns = dataset.classes if one_val else validation.classes
        binary = "one column, P(label = 1) of a binary problem,"
        val_holds, path_holds = (
            (binary, f"{columns} class columns")
            if one_val
            else (f"{columns} class columns", binary)
        )
        hint = (
            "; save both files' predictions the same way (two columns' P(label = 1) is probs[:, 1])"
            if columns == 2
            else ""
        )
        return f"holds {val_holds} where PATH holds {path_holds.rstrip(',')}{hint}"
    if validation.form == dataset.form or (validation.form, dataset.form) == (
        "log_probs",
        "logits",
    ):
        return ""
    if not validation.form_named:  # PATH's array names its form, which no flag can change
        return (
            f"does not name its form (read as {_FORM_WORDS[validation.form]}, as it is "
            f"without --logits or --log-probs, which PATH's file refuses) where PATH's array "
            f"names {_FORM_WORDS[dataset.form]}; save VAL as PATH is, with its predictions "
            "named (np.savez(VAL, logits=..., labels=...))"
        )
    return (
        f"holds {_FORM_WORDS[validation.form]} where PATH holds "
        f"{_FORM_WORDS[dataset.form]}; the temperature is fitted on VAL in PATH's form, so "
        "save VAL's predictions in that form (or PATH's in VAL's)"
    )


def _evaluate(dataset: Any, args: argparse.Namespace, validation: Any = None) -> crossent.Report:
    """crossent.report of one opened file, with a progress bar for large inputs; the
    temperature fitted on ``validation`` (``--temperature-from``) when given."""
    large = dataset.n * dataset.classes >= _PROGRESS_ENTRIES and sys.stderr.isatty()
    progress, bar = _progress_factory(large)
    try:
        if bar is not None:
            bar.start()
        held_out = {} if validation is None else validation_options(validation)
        report = build_report(dataset, progress=progress, **_options(args), **held_out)
    except crossent.InputError as exc:
        if validation is not None and str(exc).startswith("`temperature_from`"):
            said = str(exc).removeprefix("`temperature_from`").removeprefix(": ")
            raise crossent.InputError(
                f"--temperature-from {validation.source}: {in_file_terms(said, validation)}"
            ) from exc
        where = "" if dataset.builtin else f"{dataset.source}: "
        raise crossent.InputError(f"{where}{in_file_terms(str(exc), dataset)}") from exc
    finally:
        if bar is not None:
            bar.stop()
    return report


def _run_comparison(args: argparse.Namespace) -> int:
    """``crossent report A B [C ...]``: each model's report and paired differences."""
    form = "logits" if args.logits else "log_probs" if args.log_probs else None
    check_distinct(args.paths)
    if args.output is not None:
        _check_output(args.output, [p for p in [*args.paths, args.labels] if p])
    reports = []
    for path in args.paths:
        dataset = open_dataset(
            path, form=form, dtype=args.dtype, columns=_columns(args), labels=args.labels
        )
        try:
            reports.append(_evaluate(dataset, args))
        finally:
            dataset.close()
    comparison = crossent.compare_reports(
        reports,
        names=[str(path) for path in args.paths],
        resamples=args.resamples,
        seed=args.seed,
    )
    if args.output is not None:
        _write_output(args.output, comparison)
    payload = comparison.to_dict()
    with closed_pipe_is_quiet(sys.stdout, what="the comparison"):
        if args.json:
            print(_json_text(payload))
        elif args.markdown:
            print(printable(render_comparison_markdown(comparison), keep="\n"))
        else:
            console = _console()
            render_comparison_terminal(comparison, console)
            if args.output is not None:
                console.print(f"{_output_format(args.output)} report written to {args.output}")
    codes = [_gates(model) for model in payload["models"]]
    return EXIT_GATE if EXIT_GATE in codes else EXIT_OK


_GATE_WORDS = {"max_ece": ("calibration error", "--max-ece"), "max_nll": ("NLL", "--max-nll")}


def _gates(payload: dict[str, Any]) -> int:
    failures = 0
    for gate in payload["gates"]:
        if gate["pass"]:
            continue
        failures += 1
        what, flag = _GATE_WORDS[gate["name"]]
        shown, limit = crossent.Report.format_gate(gate["value"], gate["threshold"])
        unit = " nats" if gate["name"] == "max_nll" else ""
        print(
            f"crossent: gate failed: {what} {shown}{unit} > {flag} {limit}",
            file=sys.stderr,
        )
    return EXIT_GATE if failures else EXIT_OK


class _Terminated(BaseException):
    """Raised by the SIGTERM handler, so that cleanup runs as it does for Ctrl-C."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`_Terminated` while the command runs (main thread only)."""

    def handler(signum: int, frame: object) -> None:
        raise _Terminated(signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError, AttributeError):  # not the main thread, or no SIGTERM
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    if _standard_output_closed():
        return EXIT_USAGE
    _escape_what_cannot_be_encoded()
    with complete_writes():
        return _parse_and_run(argv)


def _parse_and_run(argv: Sequence[str] | None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(_negative_values_attached(argv))
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 for --help
        return _printed(int(exc.code or 0), _parser_text(argv))
    except BrokenPipeError:  # --help into a closed pipe (unbuffered): quiet, as demo
        drop_unwritable(sys.stdout)
        return EXIT_OK
    except OSError as error:  # --help's text not written (_Parser._print_message)
        return _output_failed(StandardOutputError(error, _parser_text(argv)))
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        with _sigterm_raises():
            return _run(args)
    except KeyboardInterrupt:
        print("crossent: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Terminated:
        print("crossent: terminated", file=sys.stderr)
        return EXIT_TERMINATED


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command == "demo":
            run_demo(sys.stdout, args.topic)
            return EXIT_OK
        if args.command == "explain":
            run_explain(args, sys.stdout)
            return EXIT_OK
        return _run_report(args)
    except crossent.CrossentError as exc:
        print(f"crossent: error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        return _output_failed(exc)
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        print(
            f"crossent: internal error ({type(exc).__name__}: {printable(str(exc))}); please "
            "report it "
            "with the command you ran (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _standard_output_closed() -> bool:
    """Whether standard output is closed (``>&-``: Python's ``sys.stdout`` is None), said
    in one line before any work; every command ended in an internal error (exit 3) or,
    for ``--help``, a traceback.  A closed standard error (``2>&-``) is replaced by a
    stream that nobody reads: its messages are dropped, as asked, and the exit codes kept (a usage
    error exited 1, a failed gate's code, and the errors were printed on standard output,
    into the JSON a script reads)."""
    if sys.stderr is None:
        sys.stderr = DroppedStream()  # never read: what is printed there is dropped
    if sys.stdout is not None:
        return False
    print(
        "crossent: error: standard output is closed; redirect it to a file, or to "
        "/dev/null to discard it",
        file=sys.stderr,
    )
    return True


def _escape_what_cannot_be_encoded() -> None:
    """Write a character that standard output's encoding cannot hold as its backslash
    escape (``\\u732b``), as Python writes standard error: a class name or a path in
    Chinese on a stdout in ASCII or cp1252 (``PYTHONIOENCODING``, a redirected Windows
    console) ended the report in "internal error (UnicodeEncodeError ...)", exit 3."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):  # a replaced stream is its owner's
            with contextlib.suppress(ValueError, OSError):  # closed, or detached
                stream.reconfigure(errors="backslashreplace")


def _parser_text(argv: Sequence[str] | None) -> str:
    """What argparse printed on standard output: the version or the help."""
    return "the version" if "--version" in (sys.argv[1:] if argv is None else argv) else "the help"


def _printed(code: int, what: str) -> int:
    """``code`` once argparse's text (``--help``, ``--version``) is flushed: a closed pipe
    is quiet, a full device an error (argparse would exit 0 and lose the text)."""
    try:
        with closed_pipe_is_quiet(sys.stdout, what=what):
            pass
    except OSError as error:
        return _output_failed(error)
    return code


def _output_failed(error: OSError) -> int:
    """Exit 2 with one line; stdout's unwritten text is dropped, not flushed again at exit
    (Python would add "Exception ignored ... OSError" and exit 120).  A failed write to
    standard output names what was lost: "standard output: cannot write the report (No
    space left on device)", as ``--output``'s "PATH: cannot write (...)"."""
    said = error.message if isinstance(error, StandardOutputError) else str(error)
    print(f"crossent: error: {printable(said)}", file=sys.stderr)
    drop_unwritable(sys.stdout)
    return EXIT_USAGE


def console_main() -> None:
    """Entry point of the installed ``crossent`` script (through ``crossent_command``,
    which imports this module) and of ``python -m crossent``.  Ctrl-C before
    :func:`main`'s own handler (while the parser is built or the arguments read) is
    the same line and exit code, not Python's traceback."""
    try:
        code = main()
    except KeyboardInterrupt:
        if sys.stderr is not None:
            print("crossent: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    sys.exit(code)
