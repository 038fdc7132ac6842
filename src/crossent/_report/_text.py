"""The report's numbers in words, the same in every rendering.

The HTML page (``_html.py``) and ``crossent report``'s terminal and Markdown output
(through :meth:`Report.metric_rows <crossent.Report.metric_rows>` and its siblings)
take the headline rows, the calibration definition and the columns sentence from here.
"""

from __future__ import annotations

import decimal
import math
from typing import Any

from .._reprs import FIXED_LIMIT as _FIXED_LIMIT
from ..errors import InputError

__all__ = [
    "SHOWN_BINS",
    "SHOWN_CLASSES",
    "bin_labels",
    "columns_statement",
    "definition",
    "fmt",
    "from_json_number",
    "gap_text",
    "gate_texts",
    "held_out_rows",
    "metric_rows",
    "shown_bins",
    "shown_classes",
    "surprisal_text",
    "temperature_text",
    "to_json_number",
]

SHOWN_CLASSES = 30
"""Per-class bars and table rows drawn at most (the worst classes beyond: thousands of
bars take minutes to draw and show nothing legible)."""


_INFINITIES = {"inf": math.inf, "-inf": -math.inf}


def to_json_number(value: float | None) -> float | str | None:
    """A number as the JSON report holds it (since format 2): a finite number as itself, an
    infinity as the string ``"inf"`` or ``"-inf"`` (JSON has no infinities), and NaN or
    None, an undefined or not applicable value, as null."""
    if value is None or math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return float(value)


def from_json_number(value: float | str | None) -> float | None:
    """The number a JSON report's value stands for: ``"inf"``/``"-inf"`` are the
    infinities, null (undefined) is None."""
    if isinstance(value, str):
        if value not in _INFINITIES:
            raise InputError(
                f'a JSON report number must be a number, "inf", "-inf" or null; got {value!r}'
            )
        return _INFINITIES[value]
    return None if value is None else float(value)


def fmt(value: float | str | None, digits: int = 4) -> str:
    """A JSON report's number for people: ``inf``, ``-inf``, ``undefined`` for null, or
    the number with ``digits`` decimals; from ``_reprs.FIXED_LIMIT`` on, with ``digits``
    decimals in scientific notation (``6.6667e+307``), which fixed notation wrote with
    all its 308 digits, a table cell 313 characters wide."""
    number = from_json_number(value)
    if number is None or math.isnan(number):
        return "undefined"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    if abs(number) >= _FIXED_LIMIT:
        return f"{number:.{digits}e}"
    return f"{number:.{digits}f}"


def surprisal_text(entry: dict[str, Any], digits: int = 4) -> str:
    """A most surprising row's surprisal (an entry of the JSON report's
    ``most_surprising``) as every rendering prints it: :func:`fmt` of
    ``surprisal_nats``, or, for a surprisal past float64 (``"inf"`` beside its
    finite ``surprisal_half_nats``: logits ``[1e308, -1e308]`` of label 1, 2e308), its
    half doubled exactly in decimal (``2.0000e+308``; it printed ``inf``)."""
    half = entry.get("surprisal_half_nats")
    if half is None:
        return fmt(entry["surprisal_nats"], digits)
    with decimal.localcontext() as context:
        context.prec = 800  # (every float's decimal expansion is shorter: exact)
        return f"{decimal.Decimal(half) * 2:.{digits}e}"


def _edge_texts(edges: list[float]) -> dict[float, str]:
    """Each edge value's text: 3 decimals, or as many more as tell it from the next
    smaller and larger edge (equal-mass bins of near-certain predictions have edges such
    as 0.99999999999997 and 0.999999999999996, which 3 decimals both print as 1.000);
    a value those decimals hold exactly (1.0) keeps 3.  Equal edges print alike."""
    values = sorted(set(edges))
    texts = {}
    for index, value in enumerate(values):
        others = values[max(index - 1, 0) : index] + values[index + 1 : index + 2]
        text = repr(value)
        for digits in range(3, 18):
            candidate = f"{value:.{digits}f}"
            if all(f"{other:.{digits}f}" != candidate for other in others):
                text = candidate
                break
        if float(text) == value and "." in text and "e" not in text:
            head, tail = text.split(".")
            text = f"{head}.{tail.rstrip('0').ljust(3, '0')}"
        texts[value] = text
    return texts


def bin_labels(rows: list[dict[str, Any]], closed: str, bins: int) -> list[str]:
    """The reliability bins (rows of ``payload["reliability_bins"]``, of ``bins`` bins)
    as intervals: ``[a, b)`` with the last bin ``[a, b]`` (``closed="left"``), or
    ``(a, b]`` with the first ``[a, b]`` (``closed="right"``); each edge with 3 decimals,
    or more where fewer would print two different edges alike."""
    edges = [float(row[side]) for row in rows for side in ("lower", "upper")]
    by_value = _edge_texts(edges)
    labels = []
    for row in rows:
        if closed == "left":
            opening, closing = "[", "]" if row["index"] == bins - 1 else ")"
        else:
            opening, closing = "[" if row["index"] == 0 else "(", "]"
        lower, upper = by_value[float(row["lower"])], by_value[float(row["upper"])]
        labels.append(f"{opening}{lower}, {upper}{closing}")
    return labels


SHOWN_BINS = 100
"""Reliability bins listed in the HTML table at most (those with the most examples
beyond: 2**20 bins made a page of minutes' work that nobody reads)."""


def shown_bins(rows: list[dict[str, Any]], bins: int) -> tuple[list[dict[str, Any]], str]:
    """The reliability bins to list (``payload["reliability_bins"]``: the non-empty
    ones), in bin order, and a note saying which: every one up to :data:`SHOWN_BINS`,
    beyond that the :data:`SHOWN_BINS` with the most examples (the first on ties)."""
    empty = bins - len(rows)
    note = f"{empty} of the {bins} bins hold no example and are not listed" if empty else ""
    if len(rows) <= SHOWN_BINS:
        return rows, note
    most = sorted(rows, key=lambda r: (-r["count"], r["index"]))[:SHOWN_BINS]
    shown = sorted(most, key=lambda r: r["index"])
    return shown, (
        f"the {SHOWN_BINS} bins with the most examples, of the {len(rows)} holding "
        f"examples (of {bins} bins; the JSON lists every one holding examples)"
    )


def metric_rows(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """The headline metrics as (label, formatted value), for every rendering."""
    p, ece, smooth = payload, payload["ece"], payload["smooth_ece"]
    return [
        ("accuracy", f"{p['accuracy']:.4f}"),
        ("NLL (nats)", fmt(p["nll_nats"])),
        ("NLL (bits)", fmt(p["nll_bits"])),
        ("perplexity", fmt(p["perplexity"], 3)),
        ("Brier score (sum over classes, in [0, 2])", f"{p['brier']:.4f}"),
        ("mean entropy of the predictions (nats)", f"{p['mean_entropy_nats']:.4f}"),
        (
            f"calibration error ({ece['confidence']:.0%} bootstrap interval)",
            f"{ece['value']:.4f}  [{ece['ci_low']:.4f}, {ece['ci_high']:.4f}]",
        ),
        (
            "smooth calibration error (smECE)",
            f"{smooth['value']:.4f}  (bandwidth {smooth['bandwidth']:.4f})",
        ),
    ]


def held_out_rows(
    payload: dict[str, Any],
) -> tuple[str, list[str], list[list[str]]] | None:
    """The held-out temperature's table (``payload["held_out_temperature"]``): a title
    naming the temperature and the validation rows it was fitted on, the header, and the
    rows ``[metric, uncalibrated, at T]``; None without validation rows."""
    held = payload.get("held_out_temperature")
    if not held:
        return None
    ece, after = payload["ece"], held["ece"]
    bound = f", at a bound of {held['bounds']}" if held["at_bound"] else ""
    title = (
        f"at the temperature T = {held['value']:.4f} fitted on {held['source']} "
        f"({held['n']} validation rows{bound})"
    )
    rows = [
        ["NLL (nats)", fmt(payload["nll_nats"]), fmt(held["nll_nats"])],
        ["Brier score", f"{payload['brier']:.4f}", f"{held['brier']:.4f}"],
        [
            f"calibration error ({ece['confidence']:.0%} bootstrap interval)",
            f"{ece['value']:.4f}  [{ece['ci_low']:.4f}, {ece['ci_high']:.4f}]",
            f"{after['value']:.4f}  [{after['ci_low']:.4f}, {after['ci_high']:.4f}]",
        ],
        ["accuracy (unchanged by T)", f"{payload['accuracy']:.4f}", f"{payload['accuracy']:.4f}"],
    ]
    return title, ["metric", "uncalibrated", "at held-out T"], rows


def gate_texts(value: float | str | None, threshold: float) -> tuple[str, str]:
    """A gate's value and threshold as printed beside each other: the threshold as given
    (its shortest round-trip text: 0.1234567, not ``:g``'s 0.123457), the value with 4
    decimals, or as many more as keep the printed pair in the order of the numbers (a
    failed ``NLL 1.56704964 > 1.56705`` printed as ``1.5670 > 1.56705`` was false)."""
    limit = repr(float(threshold)).removesuffix(".0")
    number = from_json_number(value)
    if number is None or not math.isfinite(number):
        return fmt(value), limit
    above = number > threshold
    kind = "e" if abs(number) >= _FIXED_LIMIT else "f"  # as fmt: not 309 digits of 1e308
    for digits in range(4, 18):
        text = f"{number:.{digits}{kind}}"
        if (float(text) > threshold) == above:
            return text, limit
    return repr(number), limit


def definition(payload: dict[str, Any]) -> str:
    """The calibration error's definition, its resamples and its preset, in one line."""
    ece = payload["ece"]
    preset = f"; preset {ece['preset']}" if ece.get("preset") else ""
    return f"{ece['definition']}; {ece['interval']} of {ece['resamples']} resamples{preset}"


def gap_text(payload: dict[str, Any]) -> str:
    """The cross-fitted recalibration gap, or why there is none."""
    gap = payload["recalibration_gap_nats"]
    return "n/a (too few rows or errors to cross-fit, or undefined)" if gap is None else fmt(gap)


def temperature_text(temperature: dict[str, Any]) -> str:
    """The fitted temperature (``payload["temperature"]``) with 4 decimals, and, when the
    fit stopped at one of its bounds, that it did: there the NLL keeps falling beyond the
    bound, and the number is the bound, not an optimum (the HTML page showed a separable
    input's "fitted temperature 0.0500" as if it were one; the JSON's ``at_bound`` and
    the terminal said so)."""
    value = f"{temperature['value']:.4f}"
    if not temperature.get("at_bound"):
        return value
    return (
        f"{value} (at a bound of {temperature['bounds']}: the NLL keeps falling beyond it, "
        "so no temperature in the bounds is NLL-optimal)"
    )


def columns_statement(columns: dict[str, Any]) -> str:
    """One sentence naming the columns a table was read with, or the arrays of an
    archive (``predictions`` names its array), and those it did not use (``ignored``;
    main listed them in the JSON only, and an ``.npz``'s nowhere)."""
    if "predictions" in columns:
        return (
            f"Arrays used: predictions from '{columns['predictions']}', labels from "
            f"'{columns['label']}'{_not_used(columns)}."
        )
    parts = [f"labels from column '{columns['label']}'"]
    if columns.get("id") == "":  # the unnamed column pandas writes for its index
        parts.append("row ids from the unnamed column (a pandas index)")
    elif columns.get("id"):
        parts.append(f"row ids from '{columns['id']}'")
    classes = columns.get("classes", [])
    if columns.get("list") is not None:  # one column holding a list of K values a row
        parts.append(
            f"{len(classes)} classes 0..{len(classes) - 1} from the lists in column "
            f"'{columns['list']}' (named '{classes[0]}'..'{classes[-1]}')"
        )
        return "Columns used: " + "; ".join(parts) + _not_used(columns) + "."
    shown = ", ".join(f"'{c}'" for c in classes[:12]) + (", ..." if len(classes) > 12 else "")
    parts.append(f"{len(classes)} class column{'s' if len(classes) != 1 else ''} ({shown})")
    return "Columns used: " + "; ".join(parts) + _not_used(columns) + "."


def _not_used(columns: dict[str, Any]) -> str:
    """The clause "; not used: 'ids', 'weights'" (the first 12), or "" when all were used."""
    ignored = columns.get("ignored") or []
    if not ignored:
        return ""
    names = [f"'{name}'" if name else "an unnamed column" for name in ignored[:12]]
    more = f", and {len(ignored) - 12} more" if len(ignored) > 12 else ""
    return "; not used: " + ", ".join(names) + more


def shown_classes(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The per-class rows to draw, and a note when they are not all of them: up to
    :data:`SHOWN_CLASSES` classes, beyond that those with the highest mean NLL (infinite
    first; classes without examples left out).  The JSON lists every class."""
    if len(rows) <= SHOWN_CLASSES:
        return rows, ""
    seen = [r for r in rows if r["count"]]
    seen.sort(key=lambda r: -float(r["nll_nats"]))  # "inf" (since format 2) is float("inf")
    shown = seen[:SHOWN_CLASSES]
    return shown, f"the {len(shown)} classes with the highest mean NLL, of {len(rows)}"
