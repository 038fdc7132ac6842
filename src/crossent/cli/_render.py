"""How a report looks on the terminal: rich tables.  (The HTML page is the library's
``Report.to_html``.)"""

from __future__ import annotations

from typing import Any

import crossent

__all__ = ["render_terminal"]


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "inf"
    return f"{value:.{digits}f}"


def _metric_rows(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """The headline metrics as (label, formatted value), for both renderings."""
    p, ece = payload, payload["ece"]
    return [
        ("accuracy", f"{p['accuracy']:.4f}"),
        ("NLL (nats)", _fmt(p["nll_nats"])),
        ("NLL (bits)", _fmt(p["nll_bits"])),
        ("perplexity", _fmt(p["perplexity"], 3)),
        ("Brier score (sum over classes, in [0, 2])", f"{p['brier']:.4f}"),
        ("mean entropy of the predictions (nats)", f"{p['mean_entropy_nats']:.4f}"),
        (
            f"calibration error ({ece['confidence']:.0%} bootstrap interval)",
            f"{ece['value']:.4f}  [{ece['ci_low']:.4f}, {ece['ci_high']:.4f}]",
        ),
        (
            "smooth calibration error (smECE)",
            f"{p['smooth_ece']['value']:.4f}  (bandwidth {p['smooth_ece']['bandwidth']:.4f})",
        ),
    ]


def _definition(payload: dict[str, Any]) -> str:
    ece = payload["ece"]
    return f"{ece['definition']}; {ece['resamples']} resamples"


def _gap(payload: dict[str, Any]) -> str:
    gap = payload["recalibration_gap_nats"]
    return "n/a (too few rows to cross-fit)" if gap is None else f"{gap:.4f}"


def _columns_statement(columns: dict[str, Any]) -> str:
    """One sentence naming the columns a table was read with."""
    parts = [f"labels from column '{columns['label']}'"]
    if columns.get("id"):
        parts.append(f"row ids from '{columns['id']}'")
    classes = columns.get("classes", [])
    shown = ", ".join(f"'{c}'" for c in classes[:12]) + (", ..." if len(classes) > 12 else "")
    parts.append(f"{len(classes)} class column{'s' if len(classes) != 1 else ''} ({shown})")
    return "Columns used: " + "; ".join(parts) + "."


def render_terminal(report: crossent.Report, console: Any) -> None:
    """Print the report as rich tables to ``console``."""
    from rich.table import Table

    p = report.to_dict()
    if p["builtin_example"]:
        console.print(
            "[bold]This is the built-in example[/bold] (no file given): "
            + p["source"].removeprefix("built-in example: ")
            + "."
        )
    else:
        console.print(f"[bold]{p['source']}[/bold] ({p['form']})", markup=True)
    if p.get("columns"):
        console.print(_columns_statement(p["columns"]), markup=False)
    for note in p["notes"]:
        console.print(f"note: {note}.", markup=False)
    overview = Table(title=f"{p['n']} examples, {p['classes']} classes", show_header=False)
    overview.add_column("metric")
    overview.add_column("value", justify="right")
    for name, value in _metric_rows(p):
        overview.add_row(name, value)
    console.print(overview)
    console.print(f"calibration error: {_definition(p)}.")
    t = p["temperature"]
    if t["value"] is None:
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
        console.print(scaled)
        if t["at_bound"]:
            console.print(
                f"the fitted temperature is at a bound of {t['bounds']}: the NLL keeps falling "
                "beyond it (labels nearly independent of the predictions, or separable data)"
            )
    classes = Table(title="cross-entropy per true class")
    for column in ("class", "examples", "accuracy", "NLL (nats)", "one-vs-rest ECE"):
        classes.add_column(column, justify="right")
    for row in p["per_class"]:
        nll = "-" if row["count"] == 0 else _fmt(row["nll_nats"])
        accuracy = "-" if row["accuracy"] is None else f"{row['accuracy']:.4f}"
        classes.add_row(
            row["name"], str(row["count"]), accuracy, nll, f"{row['calibration_error']:.4f}"
        )
    console.print(classes)
    for gate in p["gates"]:
        verdict = "pass" if gate["pass"] else "FAIL"
        console.print(f"gate {gate['name']} <= {gate['threshold']:g}: {verdict}", markup=False)
    surprising = Table(title="most surprising examples (check these labels first)")
    has_id = any("id" in row for row in p["most_surprising"])
    for column in (["id"] if has_id else []) + ["row", "label", "predicted", "surprisal (nats)"]:
        surprising.add_column(column, justify="right")
    for row in p["most_surprising"]:
        surprising.add_row(
            *([str(row.get("id", ""))] if has_id else []),
            str(row["index"]),
            report.class_names[row["label"]],
            report.class_names[row["predicted"]],
            _fmt(row["surprisal_nats"]),
        )
    console.print(surprising)
