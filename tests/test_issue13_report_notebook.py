"""A hostile pass over the report as a notebook shows it (issue 13, branch notebook2).

The notebook fragment's style must not restyle the rest of the notebook, long class
names must leave the figures legible (no collapsed layout), the per-bin intervals must
say what they are, and ``compare_reports`` must refuse reports whose calibration errors
are defined differently (its table and figure put them under one heading)."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest

import crossent


def _probs(n: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(classes), size=n), rng.integers(0, classes, size=n)


def test_notebook_fragment_styles_only_itself() -> None:
    # A notebook shows every cell's HTML in one page: an unscoped `table { ... }` or
    # `body { max-width: 1200px }` applies to the whole notebook.
    probs, labels = _probs(60, 3)
    fragment = crossent.report(probs, labels, resamples=10)._repr_html_()
    opening = re.match(r'<div class="([^"]+)">', fragment)
    assert opening is not None, fragment[:80]
    scope = "." + opening.group(1)
    styles = re.findall(r"<style>(.*?)</style>", fragment, flags=re.S)
    assert len(styles) == 1
    selectors = [
        selector.strip()
        for rule in styles[0].split("}")
        if "{" in rule
        for selector in rule.split("{")[0].split(",")
    ]
    assert selectors, styles[0]
    unscoped = [s for s in selectors if s != scope and not s.startswith(scope + " ")]
    assert unscoped == []


def test_comparison_fragment_styles_only_itself() -> None:
    probs, labels = _probs(60, 3)
    first = crossent.report(probs, labels, resamples=10)
    second = crossent.report(np.full_like(probs, 1 / 3), labels, resamples=10)
    fragment = crossent.compare_reports([first, second], resamples=10)._repr_html_()
    style = re.findall(r"<style>(.*?)</style>", fragment, flags=re.S)[0]
    assert not re.search(r"(^|\})\s*(body|table|th|td|figure)\b", style), style


@pytest.mark.parametrize(
    "names",
    [
        pytest.param([f"{'M' * 100}{k}" for k in range(3)], id="three-100-characters"),
        pytest.param([f"{'W' * 80}{k}" for k in range(25)], id="twenty-five-80-characters"),
        pytest.param(["line\n" * 30 + str(k) for k in range(3)], id="thirty-lines"),
    ],
)
def test_long_class_names_leave_the_figures_legible(names: list[str]) -> None:
    # main: matplotlib warned "constrained_layout not applied because axes sizes
    # collapsed to zero" and the per-class figure drew no bars
    pytest.importorskip("matplotlib")
    probs, labels = _probs(10 * len(names), len(names))
    result = crossent.report(probs, labels, class_names=names, resamples=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fragment = result._repr_html_()
    from crossent._report._html import _per_class_figure

    _, figure = _per_class_figure(result)
    axis = figure.axes[0]
    assert "names cut to 16 characters, in full in the table" in axis.get_xlabel()
    assert all(len(tick.get_text()) <= 16 for tick in axis.get_xticklabels())
    for name in names[:3]:  # the table has every name in full (a line break as \x0a)
        shown = name.replace("\n", "\\x0a")
        assert f"<td>{shown}</td>" in fragment


def test_drawn_names_are_cut_and_escaped_and_say_so() -> None:
    from crossent._report._html import DRAWN_NAME, _cut_note, drawn_name

    assert drawn_name("cat") == "cat"
    assert drawn_name("a\nb\tc") == "a\\nb\\tc"  # one line, the break visible
    cut = drawn_name("x" * 100)
    assert len(cut) == DRAWN_NAME
    assert cut.endswith("\N{HORIZONTAL ELLIPSIS}")
    assert _cut_note(["cat", "dog"]) == ""
    assert "cut to" in _cut_note(["cat", "x" * 100])
    assert _cut_note(["ends in an ellipsis\N{HORIZONTAL ELLIPSIS}"[:DRAWN_NAME]]) == ""


def test_bin_intervals_say_their_method_and_level() -> None:
    probs, labels = _probs(200, 3)
    result = crossent.report(probs, labels, resamples=10)
    data = result.to_dict()
    interval = data["reliability_interval"]
    assert interval["method"] == "jeffreys"
    assert interval["confidence"] == result.diagram.confidence_level == 0.95
    # the definition's numbers: the Beta(h + 1/2, n - h + 1/2) quantiles (SciPy oracle)
    from scipy import stats

    for row in data["reliability_bins"]:
        if row["count"] == 0:
            assert row["ci_low"] is None
            assert row["ci_high"] is None
            continue
        hits = round(row["accuracy"] * row["count"])
        beta = stats.beta(hits + 0.5, row["count"] - hits + 0.5)
        low = 0.0 if hits == 0 else beta.ppf(0.025)
        high = 1.0 if hits == row["count"] else beta.ppf(0.975)
        assert row["ci_low"] == pytest.approx(low, rel=1e-12, abs=1e-15)
        assert row["ci_high"] == pytest.approx(high, rel=1e-12, abs=1e-15)
    fragment = result._repr_html_()
    assert "<th>95% interval</th>" in fragment
    assert "Jeffreys interval of each bin&#x27;s accuracy" in fragment
    json.loads(json.dumps(data, allow_nan=False))


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"norm": "l2"}, id="norm"),
        pytest.param({"binning": "quantile"}, id="binning"),
        pytest.param({"bins": 10}, id="bins"),
        pytest.param({"scope": "class-wise"}, id="scope"),
        pytest.param({"closed": "right"}, id="closed"),
        pytest.param({"norm": "l2", "debias": True}, id="debias"),
    ],
)
def test_compare_reports_refuses_other_calibration_definitions(options: dict) -> None:
    # main: accepted; the HTML's "ECE" column put an L2 (or quantile-binned, ...) error
    # beside an L1 one under one heading
    probs, labels = _probs(100, 3)
    base = crossent.report(probs, labels, resamples=10)
    other = crossent.report(probs, labels, resamples=10, **options)
    with pytest.raises(crossent.InputError, match="define their calibration error differently"):
        crossent.compare_reports([base, other], names=["a", "b"], resamples=10)
    # the same options are fine (and the paired differences are 0)
    same = crossent.report(probs, labels, resamples=10, **options)
    result = crossent.compare_reports([other, same], names=["a", "b"], resamples=10)
    assert [c["difference"] for c in result.comparisons] == [0.0, 0.0]


def test_compare_reports_refuses_a_one_column_beside_a_two_column_binary_input() -> None:
    # main: accepted; the overlaid curves drew P(label = 1) against [label = 1] and the
    # top-label accuracy on one axis titled by the first report's scope
    rng = np.random.default_rng(3)
    p1 = rng.uniform(0.05, 0.95, size=80)
    labels = (rng.uniform(size=80) < p1).astype(np.int64)
    two = crossent.report(np.stack([1 - p1, p1], axis=1), labels, resamples=10)
    one = crossent.report(p1, labels, resamples=10)
    with pytest.raises(crossent.InputError, match="positive-class"):
        crossent.compare_reports([two, one], resamples=10)


def test_figures_name_the_interval_of_their_bars() -> None:
    # main: "95% interval" and "binned (ECE ...)", no method
    pytest.importorskip("matplotlib")
    from crossent._report._html import reliability_figure

    probs, labels = _probs(200, 3)
    diagram = crossent.reliability_diagram(probs, labels, confidence_level=0.9)
    figure = crossent.plot_reliability_diagram(diagram)
    texts = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert "90% Jeffreys interval" in texts
    result = crossent.report(probs, labels, resamples=10)
    figure = reliability_figure([("model", result)])
    texts = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert any(text.startswith("binned, 95% Jeffreys bars (ECE") for text in texts), texts


def test_a_report_compares_with_its_copy_without_raising() -> None:
    # main: `result == pickle.loads(pickle.dumps(result))` raised "The truth value of an
    # array with more than one element is ambiguous" (the dataclass' generated __eq__),
    # and hash(result) raised TypeError
    import copy
    import pickle

    probs, labels = _probs(50, 3)
    result = crossent.report(probs, labels, resamples=10)
    for other in (pickle.loads(pickle.dumps(result)), copy.deepcopy(result)):
        assert (result == other) is False  # identity; the numbers are to_dict()'s
        assert other.to_dict() == result.to_dict()
        assert repr(other) == repr(result)
    assert {result: "a report"}[result] == "a report"  # hashable
