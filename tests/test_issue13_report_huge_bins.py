"""Issue 13, branch bins2: a report of many bins, almost all empty, stays the size of its
rows (format 3: ``reliability_bins`` lists the non-empty bins, each with its index).

Before: 4 rows with ``bins=2**20`` wrote 205 MB of JSON (every bin listed), drew 2**20
bars in the HTML report's figure and in ``plot_reliability_diagram``, listed 2**20 rows
in the HTML table, and the bootstrap looped over every bin in Python each replicate
(about 3 s a replicate). 2**12 bins here: the same code paths at a test's cost.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import crossent
from crossent._report import _html, _text
from crossent.calibration import _bootstrap
from crossent.cli import _explain

BINS = 2**12


@pytest.fixture(scope="module")
def few() -> crossent.Report:
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(4, 3)) * 2, np.array([0, 1, 2, 0])
    return crossent.report(logits, labels, form="logits", bins=BINS, resamples=20)


def test_json_lists_the_non_empty_bins_with_their_index_and_edges(few) -> None:
    payload = few.to_dict()
    assert payload["format"] == 3
    assert payload["bins"] == BINS
    rows = payload["reliability_bins"]
    d = few.diagram
    occupied = np.flatnonzero(d.count)
    assert [row["index"] for row in rows] == occupied.tolist()
    for row, b in zip(rows, occupied, strict=True):
        assert (row["lower"], row["upper"]) == (d.lower[b], d.upper[b])
        assert row["lower"] == b / BINS  # the equal-width edges (exact: BINS a power of 2)
        assert (row["count"], row["confidence"], row["accuracy"]) == (
            d.count[b],
            d.confidence[b],
            d.accuracy[b],
        )
        assert (row["ci_low"], row["ci_high"]) == (d.accuracy_low[b], d.accuracy_high[b])
    assert sum(row["count"] for row in rows) == 4
    assert len(json.dumps(payload)) < 10_000  # main: 0.8 MB at 2**12 bins


def test_ordinary_bins_keep_their_numbers() -> None:
    """15 bins: the listed bins are the diagram's non-empty ones, number for number, and
    the empty ones are only left out (their count 0 is ``bins`` minus the listed)."""
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(size=(60, 4)) * 3, rng.integers(0, 4, size=60)
    report = crossent.report(logits, labels, form="logits", resamples=5)
    diagram = crossent.reliability_diagram(logits, labels, form="logits")
    rows = report.to_dict()["reliability_bins"]
    assert 0 < len(rows) < 15  # some bins empty in this draw
    full = {row["index"]: row for row in rows}
    for b in range(15):
        if diagram.count[b] == 0:
            assert b not in full
            continue
        assert full[b]["count"] == diagram.count[b]
        assert full[b]["accuracy"] == diagram.accuracy[b]
        assert full[b]["ci_high"] == diagram.accuracy_high[b]


def test_html_table_and_figure_hold_the_non_empty_bins_only(few, monkeypatch) -> None:
    monkeypatch.setattr(_html, "figures", lambda report: [])  # the table only: no PNGs
    page = _html.body_html(few)
    table = page[page.index("<h2>Reliability bins</h2>") :]
    table = table[: table.index("</table>")]
    assert table.count("<tr><td>") == 4
    assert f"{BINS - 4} of the {BINS} bins hold no example and are not listed" in table
    figure = _html.reliability_figure([("model", few)])
    (bars,) = figure.axes[1].collections  # one collection (stop 63: one patch a bar)
    assert len(bars.get_paths()) == 4  # stop 62: 4096 bars


def test_plot_reliability_diagram_draws_the_occupied_bins_bars() -> None:
    pytest.importorskip("matplotlib")
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    diagram = crossent.reliability_diagram(probs, np.array([0, 1, 1]), bins=BINS)
    figure = crossent.plot_reliability_diagram(diagram)
    heights = sorted(patch.get_height() for patch in figure.axes[1].patches)
    assert heights == [1, 1, 1]


def test_html_lists_at_most_shown_bins_the_most_populated() -> None:
    rows = [{"index": 3 * k, "count": 1 + (k % 7)} for k in range(250)]
    shown, note = _text.shown_bins(rows, 1000)
    assert len(shown) == _text.SHOWN_BINS == 100
    assert [r["index"] for r in shown] == sorted(r["index"] for r in shown)
    least = min(r["count"] for r in shown)
    assert all(r in shown for r in rows if r["count"] > least)
    assert note.startswith("the 100 bins with the most examples, of the 250 holding")


@pytest.mark.parametrize(
    ("closed", "expected"),
    [
        ("left", ["[0.000, 0.067)", "[0.933, 1.000]"]),
        ("right", ["[0.000, 0.067]", "(0.933, 1.000]"]),
    ],
)
def test_bin_labels_close_by_the_bin_index(closed, expected) -> None:
    edges = np.linspace(0, 1, 16)
    rows = [{"index": b, "lower": edges[b], "upper": edges[b + 1]} for b in (0, 14)]
    assert _text.bin_labels(rows, closed, 15) == expected


def test_bootstrap_draws_from_the_occupied_bins_only(monkeypatch) -> None:
    seen = []
    plan_of = _bootstrap._BlockPlan.of

    def recorded(sizes):
        seen.append(len(sizes))
        return plan_of(sizes)

    monkeypatch.setattr(_bootstrap._BlockPlan, "of", recorded)
    conf, hits = np.array([0.5, 0.6, 0.9, 0.99]), np.array([1.0, 0.0, 1.0, 1.0])
    spec = crossent.calibration_error(
        np.stack([1 - conf, conf], axis=1), np.ones(4, dtype=int), bins=BINS
    ).spec
    interval = _bootstrap.binned_calibration_interval(
        conf, hits, spec, confidence=0.9, resamples=30, seed=0
    )
    assert seen == [4]  # main: a plan of 4096 bins, each looped over in Python
    assert 0.0 <= interval.low <= interval.high <= 1.0


def test_report_refuses_bins_whose_per_class_calibration_is_too_big() -> None:
    """Main refused a top-label report of 20 classes of 2**20 bins for "the class-wise
    scope", and advised "the top-label scope", the one asked for."""
    logits, labels = np.zeros((2, 20)), np.array([0, 1])
    with pytest.raises(crossent.InputError) as caught:
        crossent.report(logits, labels, form="logits", bins=2**20, resamples=2)
    message = str(caught.value)
    assert "at most 838860 with 20 classes" in message
    assert "top-label scope" not in message


def test_one_threshold_of_scientific_notation() -> None:
    from crossent._reprs import FIXED_LIMIT

    below = math.nextafter(FIXED_LIMIT, 0)
    for fmt in (_text.fmt, _explain.fmt):
        assert "e" not in fmt(below)
        assert "e+15" in fmt(FIXED_LIMIT)
