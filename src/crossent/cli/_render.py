"""How a report looks: rich tables on the terminal, and a self-contained HTML page.

The HTML page embeds its figures as PNG data URIs and holds no script, so it opens
anywhere, offline, and can be attached to a CI run as one file.
"""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any

import numpy as np

from ._report import Report

__all__ = ["SHOWN_CLASSES", "render_html", "render_terminal"]

SHOWN_CLASSES = 30
"""The per-class chart and table show at most this many classes (the worst beyond it)."""


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
    ]


def _gap(payload: dict[str, Any]) -> str:
    gap = payload["recalibration_gap_nats"]
    return "n/a (too few rows to cross-fit)" if gap is None else f"{gap:.4f}"


def _definition(payload: dict[str, Any]) -> str:
    ece = payload["ece"]
    return f"{ece['definition']}; {ece['resamples']} resamples"


def render_terminal(report: Report, console: Any) -> None:
    """Print the report as rich tables to ``console``."""
    from rich.table import Table

    p = report.payload
    if p["builtin_example"]:
        console.print(
            "[bold]This is the built-in example[/bold] (no file given): "
            + p["source"].removeprefix("built-in example: ")
            + "."
        )
    else:
        console.print(f"[bold]{p['source']}[/bold] ({p['form']})")
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
    shown, note = _shown_classes(p["per_class"])
    classes = Table(title="cross-entropy per true class" + (f" ({note})" if note else ""))
    for column in ("class", "examples", "NLL (nats)"):
        classes.add_column(column, justify="right")
    for row in shown:
        nll = "-" if row["count"] == 0 else _fmt(row["nll_nats"])
        classes.add_row(row["name"], str(row["count"]), nll)
    console.print(classes)
    surprising = Table(title="most surprising examples (check these labels first)")
    for column in ("row", "label", "predicted", "surprisal (nats)"):
        surprising.add_column(column, justify="right")
    for row in p["most_surprising"]:
        surprising.add_row(
            str(row["index"]),
            report.class_names[row["label"]],
            report.class_names[row["predicted"]],
            _fmt(row["surprisal_nats"]),
        )
    console.print(surprising)


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figures(report: Report) -> list[tuple[str, str]]:
    from matplotlib.figure import Figure

    import crossent

    if report.diagram is None or report.surprisal is None:
        raise ValueError("the report was built without figures (figures=False)")
    images = [
        ("Reliability diagram", _png(crossent.plot_reliability_diagram(report.diagram))),
    ]
    confidence = Figure(figsize=(5.5, 3), layout="constrained")
    axis = confidence.subplots()
    d = report.diagram
    axis.bar(d.lower, d.count, width=d.upper - d.lower, align="edge", color="C1", edgecolor="white")
    axis.set_xlabel("top-label confidence")
    axis.set_ylabel("examples")
    axis.set_xlim(0, 1)
    images.append(("Confidence histogram", _png(confidence)))
    surprisal = Figure(figsize=(5.5, 3), layout="constrained")
    axis = surprisal.subplots()
    finite = report.surprisal[np.isfinite(report.surprisal)]
    if finite.size:
        axis.hist(finite, bins=50, color="C2")
        axis.set_yscale("log")
    else:  # a log scale of empty bins would warn; say what there is instead
        axis.text(0.5, 0.5, "every surprisal is infinite", ha="center", transform=axis.transAxes)
    axis.set_xlabel("surprisal of the true label, -log p_y (nats)")
    axis.set_ylabel("examples")
    images.append(("Surprisal histogram", _png(surprisal)))
    title, names, values = _per_class_bars(report.payload["per_class"])
    per_class = Figure(figsize=(5.5, 3), layout="constrained")
    axis = per_class.subplots()
    axis.bar(names, values, color="C0")
    axis.set_xlabel("true class")
    axis.set_ylabel("mean NLL (nats)")
    if len(names) > 10:
        axis.tick_params(axis="x", labelrotation=90, labelsize="small")
    images.append((title, _png(per_class)))
    return images


def _shown_classes(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The per-class rows to show, and a note when they are not all of them.

    Up to :data:`SHOWN_CLASSES` classes are shown; beyond that, the classes with the
    highest mean NLL (infinite first; classes without examples left out), since
    thousands of bars or table rows take minutes to draw and show nothing legible.
    The JSON report lists every class.
    """
    if len(rows) <= SHOWN_CLASSES:
        return rows, ""
    seen = [r for r in rows if r["count"]]
    seen.sort(key=lambda r: -math.inf if r["nll_nats"] is None else -r["nll_nats"])
    shown = seen[:SHOWN_CLASSES]
    return shown, (
        f"the {len(shown)} classes with the highest mean NLL, of {len(rows)}; "
        "--json lists every class"
    )


def _per_class_bars(rows: list[dict[str, Any]]) -> tuple[str, list[str], list[float]]:
    """Title, class names and mean NLL (infinite drawn as 0) of the per-class bar chart."""
    shown, note = _shown_classes(rows)
    title = "Cross-entropy per class" + (f": {note}" if note else "")
    if any(r["count"] and r["nll_nats"] is None for r in shown):
        title += " (an infinite NLL is drawn as 0)"
    values = [0.0 if r["nll_nats"] is None else r["nll_nats"] for r in shown]
    return title, [r["name"] for r in shown], values


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (figures as PNG data URIs, no script)."""
    p = report.payload
    t = p["temperature"]
    rows = [
        ("examples", str(p["n"])),
        ("classes", str(p["classes"])),
        *_metric_rows(p),
        ("definition", _definition(p)),
    ]
    if t["value"] is not None:
        rows += [
            ("fitted temperature", f"{t['value']:.4f}"),
            ("NLL after temperature (nats)", _fmt(t["nll_nats"])),
            ("calibration error after temperature", f"{t['ece']:.4f}"),
            ("recalibration gap (nats, cross-fitted)", _gap(p)),
        ]
    table = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows
    )
    surprising = "\n".join(
        f"<tr><td>{r['index']}</td><td>{html.escape(report.class_names[r['label']])}</td>"
        f"<td>{html.escape(report.class_names[r['predicted']])}</td>"
        f"<td>{_fmt(r['surprisal_nats'])}</td></tr>"
        for r in p["most_surprising"]
    )
    figures = "\n".join(
        f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(title)}</figcaption></figure>"
        for title, data in _figures(report)
    )
    note = "<p><strong>This is the built-in example.</strong></p>" if p["builtin_example"] else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>crossent report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }}
figure {{ display: inline-block; margin: 0.5em; }}
</style>
</head>
<body>
<h1>crossent report</h1>
<p>{html.escape(p["source"])} &middot; crossent {html.escape(p["crossent_version"])}</p>
{note}
<table>
{table}
</table>
{figures}
<h2>Most surprising examples</h2>
<table>
<tr><th>row</th><th>label</th><th>predicted</th><th>surprisal (nats)</th></tr>
{surprising}
</table>
</body>
</html>
"""
