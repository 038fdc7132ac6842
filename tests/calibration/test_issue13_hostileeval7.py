"""Seventh hostile pass over the evaluation API (issue 13, branch hostileeval7)."""

from __future__ import annotations

import numpy as np
import pytest

import crossent


def _drawn_points(figure: object) -> np.ndarray:
    """The display coordinates of the top panel's per-bin points."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure).draw()
    top = figure.axes[0]  # type: ignore[attr-defined]
    (line,) = [line for line in top.lines if line.get_marker() == "o"]
    return top.transData.transform(line.get_xydata())


def test_logit_axis_draws_a_bin_whose_accuracy_is_one() -> None:
    # bin [0.4, 0.5) holds 3 examples, all right (accuracy 1): on main the logit axis
    # masked its point (and count) and the line jumped from the bin before to the next
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(300, 3)) * 6
    labels = logits.argmax(axis=1)
    labels[:60] = rng.integers(0, 3, size=60)
    diagram = crossent.reliability_diagram(logits, labels, form="logits", bins=10)
    assert 1.0 in diagram.accuracy.tolist()
    figure = crossent.plot_reliability_diagram(diagram, logit_axis=True)
    points = _drawn_points(figure)
    assert points.shape[0] == int(np.sum(diagram.count > 0))
    assert np.isfinite(points).all()
    box = figure.axes[0].bbox  # type: ignore[attr-defined]
    assert (points[:, 1] <= box.y1 + 1e-6).all() and (points[:, 1] >= box.y0 - 1e-6).all()
    counts = [text.get_text() for text in figure.axes[0].texts]  # type: ignore[attr-defined]
    assert counts == [str(c) for c in diagram.count[diagram.count > 0]]
    for text in figure.axes[0].texts:  # type: ignore[attr-defined]
        assert np.isfinite(text.get_window_extent()).all()


def test_positive_class_diagram_names_its_axes() -> None:
    # the positive-class curve is the fraction of label 1 against P(label = 1); main
    # labelled it "accuracy" against "confidence" (the report's figure already said so)
    pytest.importorskip("matplotlib")
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.65, 0.7, 0.8, 0.9, 1.0])
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])
    diagram = crossent.reliability_diagram(p, y, bins=3, scope="positive-class")
    figure = crossent.plot_reliability_diagram(diagram)
    top, bottom = figure.axes
    assert top.get_ylabel() == "fraction of label 1"
    assert bottom.get_xlabel() == "P(label = 1)"
    assert "fraction of label 1 per bin" in [t.get_text() for t in top.get_legend().get_texts()]
    top_label = crossent.plot_reliability_diagram(crossent.reliability_diagram(p, y, bins=3))
    assert top_label.axes[0].get_ylabel() == "accuracy"
    assert top_label.axes[1].get_xlabel() == "confidence"


def test_binary_report_html_names_its_bins_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    # a 1-D input is reported in the positive-class scope: its bins hold the mean
    # P(label = 1) and the fraction of label 1, which main's HTML table headed
    # "confidence" and "accuracy" (its figure already said "P(label = 1)")
    from crossent._report import _html

    monkeypatch.setattr(_html, "figures", lambda report: [])  # the page's text only
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.65, 0.7, 0.8, 0.9, 1.0])
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])
    binary = _html.body_html(crossent.report(p, y, bins=3, resamples=2))
    bins = binary[binary.index("<h2>Reliability bins</h2>") :]
    assert "<th>mean P(label = 1)</th><th>fraction of label 1</th>" in bins.replace("\n", "")
    two = np.stack([1 - p, p], axis=1)
    top = _html.body_html(crossent.report(two, y, bins=3, resamples=2))
    bins = top[top.index("<h2>Reliability bins</h2>") :]
    assert "<th>confidence</th><th>accuracy</th>" in bins.replace("\n", "")
