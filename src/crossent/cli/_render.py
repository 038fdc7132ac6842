"""How a report looks on the terminal: rich tables.  (The HTML page is the library's
``Report.to_html``.)"""

from __future__ import annotations

import re
from typing import Any

import crossent

from ._messages import printable

__all__ = [
    "SHOWN_CLASSES",
    "render_comparison_markdown",
    "render_comparison_terminal",
    "render_markdown",
    "render_terminal",
]


SHOWN_CLASSES = 30
"""The per-class table shows at most this many classes (the worst beyond it)."""


_fmt = crossent.Report.format_number


def _add_columns(table: Any, names: list[str]) -> None:
    """Right-justified columns ``names``."""
    for name in names:
        table.add_column(name, justify="right")


def _print_whole(console: Any, table: Any) -> None:
    """Print ``table`` with nothing cut to "…": where the terminal is narrower than the
    table, a long name (a path, a class name, a row id, a header) folds onto more lines
    and a column is never narrower than its widest number.  Cut, at 80 columns (the
    width of a report redirected to a file, or read in CI), two models in
    ``runs/<long name>/preds.npz`` both printed as ``/tmp/runs/experime…`` and every id of
    ``data/imagenet/val/...`` as ``data/imagenet/…``; at 40, ``0.2758`` as ``0.2…``."""
    for column in table.columns:
        column.overflow = "fold"
        column.min_width = max((_number_width(str(cell)) for cell in column.cells), default=1)
    console.print(table)


def _number_width(cell: str) -> int:
    """The width of the widest number in ``cell`` (``0.4211``, ``[0.3909,``), 1 if none."""
    widest = 1
    for word in cell.split():
        try:
            float(word.strip("[](),"))
        except ValueError:
            continue
        widest = max(widest, len(word))
    return widest


def _shown_classes(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The per-class rows to show, and a note when they are not all of them.

    Up to :data:`SHOWN_CLASSES` classes are shown; beyond that, the classes with the
    highest mean NLL (infinite first; classes without examples left out), since
    thousands of table rows show nothing legible.  The JSON report lists every class.
    """
    if len(rows) <= SHOWN_CLASSES:
        return rows, ""
    seen = [r for r in rows if r["count"]]
    seen.sort(key=lambda r: -float(r["nll_nats"]))  # "inf" (format 2) is float("inf")
    shown = seen[:SHOWN_CLASSES]
    return shown, (
        f"the {len(shown)} classes with the highest mean NLL, of {len(rows)}; "
        "--json lists every class"
    )


def _gap(payload: dict[str, Any]) -> str:
    gap = payload["recalibration_gap_nats"]
    return "n/a (too few rows or errors to cross-fit, or undefined)" if gap is None else _fmt(gap)


def render_terminal(report: crossent.Report, console: Any) -> None:
    """Print the report as rich tables to ``console``."""
    from rich.table import Table
    from rich.text import Text

    p = report.to_dict()
    if p["builtin_example"]:
        console.print(
            Text.assemble(
                ("This is the built-in example", "bold"),
                " (no file given): " + p["source"].removeprefix("built-in example: ") + ".",
            )
        )
    else:  # the path is text, never markup (the CLI's console has markup off)
        console.print(Text.assemble((printable(p["source"]), "bold"), f" ({p['form']})"))
    columns = report.columns_statement()
    if columns:
        console.print(columns, markup=False)
    for note in p["notes"]:
        console.print(f"note: {note}.", markup=False)
    overview = Table(title=_sized(p), show_header=False)
    overview.add_column("metric")
    overview.add_column("value", justify="right")
    for name, value in report.metric_rows():
        overview.add_row(name, value)
    _print_whole(console, overview)
    console.print(f"calibration error: {report.calibration_definition()}.")
    t = p["temperature"]
    if t["value"] is None:
        # the report's own note (printed above) says why, naming the row
        if not any(note.startswith("temperature and recalibration gap") for note in p["notes"]):
            console.print("temperature: not fitted (a label has probability 0, so NLL is inf)")
    else:
        scaled = Table(title="after temperature scaling (fitted on this input)")
        for column in (
            "temperature",
            "NLL (nats)",
            "calibration error",
            "recalibration gap (nats, 2-fold cross-fitted)",
        ):
            scaled.add_column(column, justify="right")
        scaled.add_row(
            f"{t['value']:.4f}",
            _fmt(t["nll_nats"]),
            f"{t['ece']:.4f}",
            _gap(p),
        )
        _print_whole(console, scaled)
        if t["at_bound"]:  # each bound's causes (an under-confident model's T at 0.05 was
            # said to be "labels nearly independent of the predictions, or separable data")
            why = (
                "labels nearly independent of the predictions"
                if t["value"] >= t["bounds"][1]
                else "separable data, or predictions much less confident than the labels warrant"
            )
            console.print(
                f"the fitted temperature is at a bound of {t['bounds']}: the NLL keeps falling "
                f"beyond it ({why})"
            )
    held_out = report.held_out_rows()
    if held_out is not None:
        title, header, rows = held_out
        held = Table(title=title)
        _add_columns(held, header)
        for cells in rows:
            held.add_row(*cells)
        _print_whole(console, held)
    shown, note = _shown_classes(p["per_class"])
    classes = Table(
        title="cross-entropy per true class" + (f" ({note})" if note else ""),
        caption=Text("one-vs-rest ECE: " + p["per_class_calibration"]["definition"]),
    )
    _add_columns(classes, ["class", "examples", "accuracy", "NLL (nats)", "one-vs-rest ECE"])
    for row in shown:
        nll = "-" if row["count"] == 0 else _fmt(row["nll_nats"])
        accuracy = "-" if row["accuracy"] is None else f"{row['accuracy']:.4f}"
        classes.add_row(
            row["name"], str(row["count"]), accuracy, nll, f"{row['calibration_error']:.4f}"
        )
    _print_whole(console, classes)
    for gate in p["gates"]:
        verdict = "pass" if gate["pass"] else "FAIL"
        limit = crossent.Report.format_gate(gate["value"], gate["threshold"])[1]
        console.print(f"gate {gate['name']} <= {limit}: {verdict}", markup=False)
    if not p["most_surprising"]:  # --top 0: no table of no rows under a heading
        return
    surprising = Table(title="most surprising examples (check these labels first)")
    has_id = any("id" in row for row in p["most_surprising"])
    _add_columns(
        surprising, (["id"] if has_id else []) + ["row", "label", "predicted", "surprisal (nats)"]
    )
    for row in p["most_surprising"]:
        surprising.add_row(
            *([_id_text(row.get("id", ""))] if has_id else []),
            str(row["index"]),
            report.class_names[row["label"]],
            report.class_names[row["predicted"]],
            crossent.Report.format_surprisal(row),
        )
    _print_whole(console, surprising)


def _code(text: str) -> str:
    """``text`` as a Markdown code span, verbatim whatever backticks it holds (CommonMark:
    a fence longer than its longest run of backticks, and a space inside the fence when
    the text starts or ends with one); a path such as ``a`b.npz`` would otherwise end
    the span early."""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


_MARKDOWN_ACTIVE = re.compile(r"[`*_<\[\]~]|\\(?=[!-/:-@\[-`{-~])")
"""What Markdown reads as markup inside a line: emphasis, code, an HTML tag or comment
(``<``), a link or image (``[``), strikethrough, and a backslash before punctuation
(an escape); a backslash before a letter is itself (``\\x0a``, :func:`printable`'s)."""


def _md_text(text: str) -> str:
    """``text`` (a class name, a path, a note naming them) as Markdown that renders as
    the text itself: one line (:func:`printable`), its markup characters
    backslash-escaped (a table's ``|`` is :func:`_md_table`'s).  Written as they were,
    a class column ``<!--`` opened an HTML comment that hid the rest of a CI summary or
    PR comment, ``[x](https://...)`` was a link, ``*a*`` emphasis."""
    return _MARKDOWN_ACTIVE.sub(lambda found: "\\" + found.group(0), printable(text))


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(printable(cell).replace("|", "\\|") for cell in row) + " |"
        for row in rows
    ]
    return "\n".join(lines)


def _gate_lines(payload: dict[str, Any]) -> list[str]:
    return [
        f"- gate `{g['name']} <= {crossent.Report.format_gate(g['value'], g['threshold'])[1]}`: "
        f"**{'pass' if g['pass'] else 'FAIL'}**"
        for g in payload["gates"]
    ]


def _sized(payload: dict[str, Any]) -> str:
    """``"500 examples, 4 classes"``; one row is ``"1 example"`` (was "1 examples")."""
    n = payload["n"]
    return f"{n} example{'' if n == 1 else 's'}, {payload['classes']} classes"


def render_markdown(report: crossent.Report) -> str:
    """A compact Markdown summary of one report (for a CI job summary or a PR comment)."""
    payload = report.to_dict()
    rows = [[name, value] for name, value in report.metric_rows()]
    lines = [
        f"### crossent report: {_code(printable(payload['source']))}",
        "",
        f"{_sized(payload)} ({payload['form']}).",
        "",
        _md_table(["metric", "value"], rows),
        "",
        f"Calibration error: {report.calibration_definition()}.",
    ]
    columns = report.columns_statement()
    if columns:
        lines.append(_md_text(columns))
    held_out = report.held_out_rows()
    if held_out is not None:
        title, header, held_rows = held_out
        lines += [
            "",
            f"Held-out temperature scaling, {_md_text(title)}:",
            "",
            _md_table(header, held_rows),
        ]
    lines += [f"Note: {_md_text(note)}." for note in payload["notes"]]
    gates = _gate_lines(payload)
    if gates:
        lines += ["", *gates]
    return "\n".join(lines)


def _comparison_rows(payload: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["model", "accuracy", "NLL (nats)", "Brier", "ECE", "smECE"]
    rows = [
        [
            m["name"],
            f"{m['accuracy']:.4f}",
            _fmt(m["nll_nats"]),
            f"{m['brier']:.4f}",
            f"{m['ece']['value']:.4f}",
            f"{m['smooth_ece']['value']:.4f}",
        ]
        for m in payload["models"]
    ]
    return header, rows


def _difference_rows(payload: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["model", "metric", "difference vs baseline", "interval"]
    rows = [
        [
            c["model"],
            c["metric"],
            _fmt(c["difference"]),
            f"[{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}]",
        ]
        for c in payload["comparisons"]
    ]
    return header, rows


def render_comparison_terminal(comparison: crossent.ReportComparison, console: Any) -> None:
    """Print the models side by side and their paired differences against the first."""
    from rich.table import Table

    payload = comparison.to_dict()
    header, rows = _comparison_rows(payload)
    models = Table(title=f"{len(payload['models'])} models on the same examples")
    _add_columns(models, header)
    for row in rows:
        models.add_row(*row)
    _print_whole(console, models)
    baseline = payload["models"][0]["name"]
    level = payload["comparisons"][0]["confidence"]
    header, rows = _difference_rows(payload)
    differences = Table(
        title=f"paired differences against {baseline} ({level:.0%} bootstrap interval; "
        "negative is better)"
    )
    _add_columns(differences, header)
    for row in rows:
        differences.add_row(*row)
    _print_whole(console, differences)
    definition = comparison.reports[0].calibration_definition()
    console.print(f"calibration error: {definition}.", markup=False)


def render_comparison_markdown(comparison: crossent.ReportComparison) -> str:
    """The comparison as compact Markdown."""
    payload = comparison.to_dict()
    header, rows = _comparison_rows(payload)
    d_header, d_rows = _difference_rows(payload)
    rows, d_rows = ([[_md_text(row[0]), *row[1:]] for row in table] for table in (rows, d_rows))
    lines = [
        f"### crossent report: {len(payload['models'])} models",
        "",
        _md_table(header, rows),
        "",
        f"Paired differences against {_code(printable(payload['models'][0]['name']))} "
        f"({payload['comparisons'][0]['confidence']:.0%} bootstrap intervals; negative is "
        "better):",
        "",
        _md_table(d_header, d_rows),
    ]
    for model in payload["models"]:
        gates = _gate_lines(model)
        if gates:
            lines += ["", f"{_code(printable(model['name']))}:", *gates]
    return "\n".join(lines)


def _id_text(value: Any) -> str:
    """A row id of the JSON report as printed: a missing one (JSON's null: an empty cell,
    a null) as ``null``, not Python's ``None``; a NaN is the text ``nan`` already."""
    return "null" if value is None else str(value)
