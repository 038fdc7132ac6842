"""The report as a self-contained HTML page: figures as PNG data URIs, no script.

It opens anywhere, offline, and can be attached to a CI run as one file.  The layout is
one column of at most 1200 px (readable on a 1280 px screen); figures scale down to it.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import html
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._files import write_atomically
from .._fonts import font_families
from .._hints import install_command
from .._printable import printable
from ..calibration._error import error_from_statistics
from ._compare import ReportComparison
from ._compute import Report
from ._text import (
    bin_labels,
    columns_statement,
    definition,
    fmt,
    gap_text,
    gate_texts,
    metric_rows,
    shown_bins,
    shown_classes,
    surprisal_text,
    temperature_text,
)

__all__ = [
    "DRAWN_NAME",
    "FRAGMENT_CLASS",
    "SMALL_MULTIPLES",
    "STYLE",
    "body_html",
    "comparison_html",
    "delivered",
    "drawn_name",
    "figure_html",
    "figures",
    "fragment",
    "page",
    "reliability_figure",
    "render_html",
    "table",
]

SMALL_MULTIPLES = 20
"""Class-wise reliability panels drawn at most (the worst-calibrated classes beyond)."""

_DPI = 110

DRAWN_NAME = 16
"""Characters of a class or model name drawn in a figure (tables show names in full)."""


def drawn_name(name: str) -> str:
    """A class or model name as a figure draws it: a line break or other control
    character as its escape (``\\n``), and a name longer than :data:`DRAWN_NAME` cut,
    ending in an ellipsis.  A figure's size is fixed: three 100-character class names (or
    one of many lines) left the bars no room, matplotlib warned that the layout collapsed,
    and the figure showed no bars.  A character that no font of the figures has is its
    escape too (:func:`_drawable`)."""
    text = _shown(name)
    return text if len(text) <= DRAWN_NAME else text[: DRAWN_NAME - 1] + "\N{HORIZONTAL ELLIPSIS}"


def _shown(name: str) -> str:
    printable = "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)
    return _drawable(printable)


def _cut_note(names: Sequence[str]) -> str:
    """What a figure says when it cut names (:func:`drawn_name`), else nothing."""
    cut = any(len(_shown(name)) > DRAWN_NAME for name in names)
    return f"; names cut to {DRAWN_NAME} characters, in full in the table" if cut else ""


def delivered(page: str, path: str | Path | None) -> str:
    """``page``, first written atomically to ``path`` when one is given (the contract of
    ``Report.to_html`` and ``ReportComparison.to_html``)."""
    if path is not None:
        write_atomically(Path(path), page)
    return page


@contextlib.contextmanager
def _text_as_typed() -> Iterator[None]:
    """Matplotlib text drawn as typed: class names, file names and model names come from
    the user, and matplotlib reads text between two ``$`` as mathtext, so a class column
    ``$\\frac$`` (or ``a$b$``) ended the report with a parse error, or drew another text.
    The font is ``font.family`` and then the installed ``_fonts.FALLBACK_FONTS``, so that a
    class named in Chinese is drawn where a font has its characters (:func:`_drawable`
    escapes the others).  Figures must be built and saved inside this context (tick labels
    are made when drawn)."""
    import matplotlib

    families = font_families()
    with (
        matplotlib.rc_context({"text.parse_math": False, "font.family": families}),
        np.errstate(over="ignore", invalid="ignore"),
    ):
        # (the ticks of an axis up to 1e308, a surprisal or a class's NLL of logits
        # +-1e308, overflow in matplotlib's ticker: "RuntimeWarning: overflow
        # encountered in multiply" on standard error, the figure drawn all the same)
        yield


@functools.lru_cache(maxsize=8)
def _characters(families: tuple[str, ...]) -> frozenset[int]:
    """The code points that one of the fonts of ``families`` has a glyph for."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    found: set[int] = set()
    for family in families:
        try:
            path = font_manager.findfont(
                font_manager.FontProperties(family=family), fallback_to_default=False
            )
            found.update(FT2Font(path).get_charmap())
        except (ValueError, OSError, RuntimeError):  # not installed, or not readable
            continue
    return frozenset(found)


def _drawable(text: str) -> str:
    """``text`` with each character that no font of the figures has written as its
    backslash escape (``\\u732b``), as the terminal shows what it cannot print: a class
    named 猫 was drawn as an empty box, with "UserWarning: Glyph 29483 missing from
    font(s) DejaVu Sans" on standard error.  Call it inside :func:`_text_as_typed`."""
    if text.isascii():
        return text
    import matplotlib

    characters = _characters(tuple(matplotlib.rcParams["font.family"]))
    return "".join(
        c if c.isascii() or ord(c) in characters else c.encode("ascii", "backslashreplace").decode()
        for c in text
    )


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _curve_error_words(report: Report) -> str:
    """The calibration error of the drawn bins, for the legend: the report's ECE, or for
    the class-wise scope (whose curve is the top-label one: one curve, where the
    class-wise error has one a class) the top-label error of those bins in the report's
    norm and estimator. The legend gave the class-wise value beside the top-label bins
    (0.357 where the points drawn have an L1 error of 0.506)."""
    ece = report.payload["ece"]
    if ece["scope"] != "class-wise":
        return f"ECE {ece['value']:.3f}"
    drawn = report.diagram.calibration
    spec = dataclasses.replace(drawn.spec, norm=ece["norm"], estimator=ece["estimator"])
    return f"top-label ECE {error_from_statistics(drawn.statistics, spec):.3f}"


_TOP_LABEL_BINS = (
    "<p>The bins of the top-label confidence (max_k p_k; a hit is a top label that is "
    "the label): the class-wise calibration error has one curve a class (the per-class "
    "table and figure), these bins are not its.</p>\n"
)
"""The reliability bins' heading note in a class-wise report (``payload["reliability_bins"]``
hold the top-label curve)."""


def _bars(axis: Any, centres: Any, heights: Any, widths: Any, *, color: str, label: Any) -> None:
    """Bars from 0 to ``heights`` on ``axis``, as ``axis.bar`` draws them (alpha 0.8, no
    edge), but as one ``PolyCollection``: ``bar`` makes one ``Rectangle`` artist a bar,
    and with 16 000 occupied bins (``bins=65536``, 20 000 rows of 10 classes) adding
    and drawing them took 88 of ``to_html``'s 91 s (profiled, loaded machine)."""
    from matplotlib.collections import PolyCollection

    left, right = centres - widths / 2, centres + widths / 2
    zero = np.zeros_like(heights)
    corners = np.stack(
        [np.stack([left, zero], 1), np.stack([left, heights], 1),
         np.stack([right, heights], 1), np.stack([right, zero], 1)],
        axis=1,
    )  # fmt: skip
    verts: Any = corners  # (a 3-D array: the stubs say a sequence)
    bars = PolyCollection(verts, facecolors=color, edgecolors="none", alpha=0.8, label=label)
    axis.add_collection(bars, autolim=True)
    axis.autoscale_view()
    axis.set_ylim(bottom=0)


def reliability_figure(reports: Sequence[tuple[str, Report]]) -> Any:
    """Binned accuracy with intervals and the smoothed curve (one colour per model), over
    the confidence histogram (counts per bin)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 6.4), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.plot((0, 1), (0, 1), color="0.6", linestyle="--", linewidth=1, label="perfect")
    width = 0.8 / max(len(reports), 1)
    for index, (label, report) in enumerate(reports):
        colour = f"C{index}"
        d = report.diagram
        shown = d.count > 0
        prefix = f"{drawn_name(label)}: " if len(reports) > 1 else ""
        top.errorbar(
            d.confidence[shown],
            d.accuracy[shown],
            yerr=np.maximum(
                np.stack(
                    [
                        d.accuracy[shown] - d.accuracy_low[shown],
                        d.accuracy_high[shown] - d.accuracy[shown],
                    ]
                ),
                0.0,
            ),
            fmt="o",
            color=colour,
            markersize=4,
            capsize=2,
            # the bars: each bin's Jeffreys interval (to_dict()["reliability_interval"])
            label=f"{prefix}binned, {d.confidence_level:.0%} Jeffreys bars "
            f"({_curve_error_words(report)})",
        )
        s = report.smooth
        # the smoothed curve only where there is data (it extrapolates elsewhere)
        supported = s.density >= 0.02 * np.max(s.density)
        top.plot(
            s.grid,
            np.where(supported, np.clip(s.accuracy, 0.0, 1.0), np.nan),
            color=colour,
            linewidth=1.5,
            label=f"{prefix}smoothed (smECE {s.value:.3f})",
        )
        # the occupied bins' bars only (an empty bin's bar has no height: 2**20 of them
        # took minutes to draw), as one collection of rectangles
        lower, upper = d.lower[shown], d.upper[shown]
        _bars(
            bottom,
            (lower + upper) / 2 + (index - (len(reports) - 1) / 2) * width * (upper - lower),
            d.count[shown],
            width * (upper - lower),
            color=colour,
            label=drawn_name(label) if len(reports) > 1 else None,
        )
    scope = reports[0][1].payload["ece"]["scope"]
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy" if scope != "positive-class" else "fraction of label 1")
    curve = "top-label curve of a class-wise error" if scope == "class-wise" else scope
    top.set_title(f"Reliability ({curve})", fontsize=10)
    top.legend(loc="upper left", fontsize=8)
    bottom.set_xlabel("confidence" if scope != "positive-class" else "P(label = 1)")
    bottom.set_ylabel("examples")
    return figure


def _surprisal_figure(report: Report) -> Any:
    """The histogram of the surprisals, its counts on a log axis labelled in plain text
    (:class:`~matplotlib.ticker.LogFormatter`): the log scale's default labels are
    mathtext (``$\\mathdefault{10^{2}}$``), which :func:`_text_as_typed` draws as
    typed, so every report's histogram showed that source for its tick labels."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import LogFormatter

    figure = Figure(figsize=(6.4, 3.2), layout="constrained")
    axis = figure.subplots()
    finite = report.surprisal[np.isfinite(report.surprisal)]
    if finite.size:
        axis.hist(finite, bins=50, color="C2")
        axis.set_yscale("log")
        axis.yaxis.set_major_formatter(LogFormatter())
        axis.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
    else:  # a log scale of empty bins would warn; say what there is instead
        axis.text(0.5, 0.5, "every surprisal is infinite", ha="center", transform=axis.transAxes)
    axis.set_xlabel("surprisal of the true label, -log p_y (nats)")
    axis.set_ylabel("examples")
    return figure


def _per_class_figure(report: Report) -> tuple[str, Any]:
    """Mean NLL per true class, each bar labelled with its number of examples."""
    from matplotlib.figure import Figure

    rows, note = shown_classes(report.payload["per_class"])
    title = "Cross-entropy per class" + (f": {note}" if note else "")
    if any(r["nll_nats"] == "inf" for r in rows):
        title += " (an infinite NLL is drawn as 0)"
    figure = Figure(figsize=(max(6.4, min(0.45 * len(rows), 11.0)), 3.4), layout="constrained")
    axis = figure.subplots()
    positions = np.arange(len(rows))
    heights = [
        0.0 if r["nll_nats"] is None or r["nll_nats"] == "inf" else r["nll_nats"] for r in rows
    ]
    bars = axis.bar(positions, heights, color="C0")
    axis.bar_label(bars, labels=[f"n={r['count']}" for r in rows], fontsize=7, padding=2)
    names = [r["name"] for r in rows]
    drawn = [drawn_name(name) for name in names]
    upright = len(rows) > 10 or max(map(len, drawn), default=0) > 8  # side by side, they overlap
    axis.set_xticks(positions, drawn, rotation=90 if upright else 0)
    axis.set_xlabel(f"true class (n = examples of the class{_cut_note(names)})")
    axis.set_ylabel("mean NLL (nats)")
    axis.margins(y=0.15)
    return title, figure


def _classwise_figure(report: Report) -> Any | None:
    """Small multiples: one-vs-rest reliability of each class (the worst classes first
    beyond :data:`SMALL_MULTIPLES`)."""
    from matplotlib.figure import Figure

    if report.classwise is None:
        return None
    stats = report.classwise.calibration.statistics
    rows = report.payload["per_class"]
    order = list(range(len(rows)))
    title = "One-vs-rest reliability per class"
    if len(order) > SMALL_MULTIPLES:
        order = sorted(order, key=lambda k: -rows[k]["calibration_error"])[:SMALL_MULTIPLES]
        title += f" (the {SMALL_MULTIPLES} worst-calibrated of {len(rows)} classes)"
    columns = min(5, len(order))
    lines = -(-len(order) // columns)
    figure = Figure(figsize=(2.3 * columns + 0.6, 2.2 * lines + 0.6), layout="constrained")
    axes = np.atleast_1d(figure.subplots(lines, columns, sharex=True, sharey=True)).ravel()
    for axis in axes[len(order) :]:
        axis.set_visible(False)
    for axis, k in zip(axes, order, strict=False):
        row = stats.row(k)
        shown = row.count > 0
        axis.plot((0, 1), (0, 1), color="0.6", linestyle="--", linewidth=0.8)
        axis.plot(
            row.confidence_sum[shown] / row.count[shown],
            row.hits[shown] / row.count[shown],
            marker="o",
            markersize=3,
            color="C0",
        )
        axis.set_title(
            f"{drawn_name(rows[k]['name'])}\n(ECE {rows[k]['calibration_error']:.3f})", fontsize=8
        )
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1)
        axis.tick_params(labelsize=7)
    figure.suptitle(title + _cut_note([rows[k]["name"] for k in order]), fontsize=10)
    figure.supxlabel("p_k", fontsize=8)
    figure.supylabel("fraction with label k", fontsize=8)
    return figure


def figures(report: Report) -> list[tuple[str, str]]:
    """The report's figures as (title, base64 PNG)."""
    with _text_as_typed():
        title, per_class = _per_class_figure(report)
        images = [
            ("Reliability diagram", _png(reliability_figure([("model", report)]))),
            ("Surprisal histogram", _png(_surprisal_figure(report))),
            (title, _png(per_class)),
        ]
        classwise = _classwise_figure(report)
        if classwise is not None:
            images.append(("Reliability per class", _png(classwise)))
    return images


def _escaped(text: str) -> str:
    r"""``text`` (a class, model or file name, a row id, a note) as page text: its control
    and format characters as the command line prints them (``\x1b``,
    :func:`~crossent._printable.printable`), then HTML-escaped.  ``html.escape`` alone
    left a NUL, an escape or a DEL in a model or class name on the page, where HTML
    forbids them."""
    return html.escape(printable(text))


def _id_text(value: Any) -> str:
    """A row id as the JSON report gives it and the terminal prints it: a missing one
    (an empty cell, a null; JSON's null) as ``null``, not Python's ``None``, which is
    also what an id column of strings may hold; a NaN is the text ``nan`` already."""
    return "null" if value is None else str(value)


def table(rows: Sequence[Sequence[str]], header: Sequence[str] | None = None) -> str:
    head = "<tr>" + "".join(f"<th>{_escaped(h)}</th>" for h in header) + "</tr>\n" if header else ""
    body = "\n".join(
        "<tr>" + "".join(f"<td>{_escaped(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table>\n{head}{body}\n</table>"


def figure_html(images: Sequence[tuple[str, str]]) -> str:
    return "\n".join(
        f'<figure><img alt="{_escaped(title)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_escaped(title)}</figcaption></figure>"
        for title, data in images
    )


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px;
       padding: 0 1em; line-height: 1.4; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.95em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td { font-variant-numeric: tabular-nums; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; max-width: 100%; }
figure img { max-width: 100%; height: auto; }
.scroll { overflow-x: auto; }
"""
"""The standalone page's style sheet."""

FRAGMENT_CLASS = "crossent-report"
"""The class of the notebook fragment's outer ``<div>``, which its style rules select."""


def fragment(body: str) -> str:
    """``body`` as a notebook cell's HTML: in a ``<div>`` whose style rules apply inside it
    only.  A notebook puts every cell's HTML in one page, and :data:`STYLE`'s rules for
    ``body``, ``table`` and ``figure`` restyled the whole notebook (a width of 1200 px, a
    border on every table of every other cell)."""
    rules = []
    for rule in STYLE.split("}"):
        if "{" not in rule:
            continue
        selectors, declarations = rule.split("{")
        if selectors.strip() == "body":
            selectors = ""  # the page's font, margins and width: the fragment's own
        scoped = ", ".join(
            f".{FRAGMENT_CLASS} {selector.strip()}".strip() for selector in selectors.split(",")
        )
        rules.append(f"{scoped} {{{declarations}}}")
    return (
        f'<div class="{FRAGMENT_CLASS}">\n<style>\n{chr(10).join(rules)}\n</style>\n{body}\n</div>'
    )


def _bin_columns(scope: str) -> tuple[str, str]:
    """The reliability bins' mean and rate columns: a positive-class curve's are the mean
    P(label = 1) and the fraction of label 1 (as its figure's axes), not a confidence
    and an accuracy (the table said so for every binary report of a 1-D input)."""
    if scope == "positive-class":
        return "mean P(label = 1)", "fraction of label 1"
    return "confidence", "accuracy"


def body_html(report: Report) -> str:
    """Everything between ``<body>`` and ``</body>`` (also the notebook rendering)."""
    p = report.payload
    t = p["temperature"]
    rows: list[tuple[str, str]] = [
        ("examples", str(p["n"])),
        ("classes", str(p["classes"])),
        *metric_rows(p),
        ("definition", definition(p)),
    ]
    if t["value"] is not None:
        rows += [
            ("fitted temperature", temperature_text(t)),
            ("NLL after temperature (nats)", fmt(t["nll_nats"])),
            ("calibration error after temperature", f"{t['ece']:.4f}"),
            ("recalibration gap (nats, cross-fitted)", gap_text(p)),
        ]
    for gate in p["gates"]:
        verdict = "pass" if gate["pass"] else "FAIL"
        shown, limit = gate_texts(gate["value"], gate["threshold"])
        rows.append((f"gate {gate['name']} <= {limit} (value {shown})", verdict))
    notes = "".join(f"<p>{_escaped(n)}.</p>" for n in p["notes"])
    held_out, held_html = report.held_out_rows(), ""
    if held_out is not None:
        title, header, held_rows = held_out
        held_html = (
            f"<h2>Held-out temperature scaling</h2>\n<p>{_escaped(title)}</p>\n"
            f"{table(held_rows, header)}\n"
        )
    if p.get("columns"):
        notes += f"<p>{_escaped(columns_statement(p['columns']))}</p>"
    try:
        images = figure_html(figures(report))
    except ImportError:
        images = f"<p>(figures need matplotlib: {_escaped(install_command('plot'))})</p>"
    has_id = any("id" in r for r in p["most_surprising"])
    surprising = table(
        [
            ([_id_text(r.get("id", ""))] if has_id else [])
            + [
                str(r["index"]),
                report.class_names[r["label"]],
                report.class_names[r["predicted"]],
                surprisal_text(r),
            ]
            for r in p["most_surprising"]
        ],
        (["id"] if has_id else []) + ["row", "label", "predicted", "surprisal (nats)"],
    )
    # top=0 (--top 0): no heading over a table of no rows
    surprising = f"<h2>Most surprising examples</h2>\n{surprising}" if p["most_surprising"] else ""
    per_class = table(
        [
            [
                r["name"],
                str(r["count"]),
                "-" if r["accuracy"] is None else f"{r['accuracy']:.4f}",
                "-" if r["count"] == 0 else fmt(r["nll_nats"]),
                f"{r['calibration_error']:.4f}",
            ]
            for r in shown_classes(p["per_class"])[0]
        ],
        ["class", "examples", "accuracy (recall)", "NLL (nats)", "one-vs-rest ECE"],
    )
    per_class_note = shown_classes(p["per_class"])[1]
    interval = p["reliability_interval"]
    listed, bins_note = shown_bins(p["reliability_bins"], p["bins"])
    bins = table(
        [
            [
                label,
                str(b["count"]),
                f"{b['confidence']:.4f}",
                f"{b['accuracy']:.4f}",
                f"[{b['ci_low']:.3f}, {b['ci_high']:.3f}]",
            ]
            for label, b in zip(
                bin_labels(listed, p["ece"]["closed"], p["bins"]), listed, strict=True
            )
        ],
        [
            "bin",
            "examples",
            *_bin_columns(p["reliability_scope"]),
            f"{interval['confidence']:.0%} interval",
        ],
    )
    note = "<p><strong>This is the built-in example.</strong></p>" if p["builtin_example"] else ""
    return f"""<h1>crossent report</h1>
<p>{_escaped(p["source"])} ({_escaped(p["form"])}) &middot; crossent \
{_escaped(p["crossent_version"])}</p>
{note}{notes}
{table(rows)}
{held_html}{images}
<h2>Per class</h2>
<p>One-vs-rest ECE: {_escaped(p["per_class_calibration"]["definition"])}.</p>
{f"<p>{_escaped(per_class_note)} (the JSON lists every class).</p>" if per_class_note else ""}
<div class="scroll">{per_class}</div>
<h2>Reliability bins</h2>
{_TOP_LABEL_BINS if p["ece"]["scope"] == "class-wise" else ""}\
<p>Interval: {_escaped(interval["definition"])}, at {interval["confidence"]:.0%}.</p>
{f"<p>{_escaped(bins_note)}.</p>" if bins_note else ""}\
<div class="scroll">{bins}</div>
{surprising}"""


def page(title: str, body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_escaped(title)}</title>
<style>{STYLE}</style>
</head>
<body>
{body}
</body>
</html>
"""


def render_html(report: Report, *, standalone: bool = True) -> str:
    """The report as one HTML page (``standalone``) or a fragment for a notebook."""
    body = body_html(report)
    return page("crossent report", body) if standalone else fragment(body)


def comparison_html(comparison: ReportComparison, *, standalone: bool = True) -> str:
    """The comparison table, overlaid reliability curves with a legend, then each model."""
    pairs = list(zip(comparison.names, comparison.reports, strict=True))
    headline = table(
        [
            [
                name,
                str(r.payload["n"]),
                f"{r.payload['accuracy']:.4f}",
                fmt(r.payload["nll_nats"]),
                f"{r.payload['brier']:.4f}",
                f"{r.payload['ece']['value']:.4f}",
                f"{r.payload['smooth_ece']['value']:.4f}",
            ]
            for name, r in pairs
        ],
        ["model", "examples", "accuracy", "NLL (nats)", "Brier", "ECE", "smECE"],
    )
    differences = table(
        [
            [
                c["model"],
                c["baseline"],
                c["metric"],
                fmt(c["difference"]),
                f"[{fmt(c['ci_low'])}, {fmt(c['ci_high'])}]",
            ]
            for c in comparison.comparisons
        ],
        ["model", "baseline", "metric", "difference (model - baseline)", "interval"],
    )
    try:
        with _text_as_typed():
            overlay = figure_html([("Reliability diagrams", _png(reliability_figure(pairs)))])
    except ImportError:
        overlay = f"<p>(figures need matplotlib: {_escaped(install_command('plot'))})</p>"
    level = comparison.comparisons[0]["confidence"] if comparison.comparisons else 0.95
    sections = "\n".join(
        f"<section><h2>{_escaped(name)}</h2>\n{body_html(report)}</section>"
        for name, report in pairs
    )
    body = f"""<h1>crossent report: {len(pairs)} models</h1>
{headline}
<h2>Paired differences against {_escaped(comparison.names[0])} \
({level:.0%} bootstrap intervals)</h2>
<p>Negative differences mean the model scores better than the baseline.</p>
{differences}
{overlay}
{sections}"""
    return page("crossent report", body) if standalone else fragment(body)
