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
    assert (points[:, 1] <= box.y1 + 1e-6).all()
    assert (points[:, 1] >= box.y0 - 1e-6).all()
    counts = [text.get_text() for text in figure.axes[0].texts]  # type: ignore[attr-defined]
    assert counts == [str(c) for c in diagram.count[diagram.count > 0]]
    for text in figure.axes[0].texts:  # type: ignore[attr-defined]
        assert np.isfinite(text.get_window_extent()).all()
    # the interval's band too (its upper end is 1 there): on the axis' edge, not at
    # infinity, where matplotlib masks it (branch mutation8: the band was not checked)
    assert 1.0 in diagram.accuracy_high.tolist()
    (band,) = figure.axes[0].collections  # type: ignore[attr-defined]
    corners = np.concatenate([path.vertices for path in band.get_paths()])
    assert corners.min() >= 1e-4
    assert corners.max() <= 1 - 1e-4


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


def test_a_batch_cut_into_chunks_numbers_its_rows_as_the_batch() -> None:
    # update(x[300:400], first_row=300) then update(x[400:500]): main numbered the
    # second chunk's rows from the rows seen (100 to 199, rows of another part of the
    # data set) where one update(x[300:500], first_row=300) numbers them 400 to 499
    rng = np.random.default_rng(0)
    probs, labels = rng.dirichlet(np.full(3, 0.3), size=500), rng.integers(0, 3, size=500)
    whole = crossent.EvaluationState(3, keep=200).update(probs[300:], labels[300:], first_row=300)
    chunked = crossent.EvaluationState(3, keep=200).update(
        probs[300:400], labels[300:400], first_row=300
    )
    # a bad row of a later chunk is named by its row in the data set, and the chunk
    # that raised leaves the state (and where it goes on) as it was
    bad = probs[400:].copy()
    bad[5, 0] = -0.5
    with pytest.raises(crossent.InputError, match=r"index \(405, 0\)"):
        chunked.update(bad, labels[400:])
    chunked.update(probs[400:], labels[400:])
    assert chunked.compute().most_surprising == whole.compute().most_surprising
    rows = sorted(row for row, _ in chunked.compute().most_surprising)
    assert rows == list(range(300, 500))
    # without first_row the rows seen, as before; a merged state goes on after its rows
    plain = crossent.EvaluationState(3, keep=1).update(probs[:10], labels[:10])
    plain.update(probs[10:20], labels[10:20])
    tail = crossent.EvaluationState(3, keep=1).update(probs[20:30], labels[20:30], first_row=20)
    merged = plain.merge(tail).update(probs[30:40], labels[30:40])
    one = crossent.EvaluationState(3, keep=1).update(probs[:40], labels[:40])
    assert merged.compute().most_surprising == one.compute().most_surprising


@pytest.mark.parametrize("binning", ["uniform", "quantile"])
def test_class_wise_state_gives_one_row_of_edges_a_class(binning: str) -> None:
    # CalibrationError.edges is (classes, bins + 1) for the class-wise scope, as
    # calibration_error gives it; main's state gave (bins + 1,) for equal-width bins,
    # so edges[k] of class k was the k-th edge, one number
    rng = np.random.default_rng(0)
    probs, labels = rng.dirichlet(np.ones(3), size=20), rng.integers(0, 3, size=20)
    one_shot = crossent.calibration_error(
        probs, labels, scope="class-wise", binning=binning, bins=4
    )
    state = crossent.EvaluationState(3, scope="class-wise", binning=binning, bins=4)
    streamed = state.update(probs, labels).calibration()
    assert streamed.edges.shape == one_shot.edges.shape == (3, 5)
    if binning == "uniform":
        np.testing.assert_array_equal(streamed.edges, one_shot.edges)
    assert state.compute().calibration.edges.shape == (3, 5)


def test_chunks_of_several_blocks_number_their_rows_as_the_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the stacked path (a batch of several blocks of stored probabilities) goes on after
    # its batch too (branch mutation8: only the one-block path was tested)
    from crossent.calibration import _inputs

    monkeypatch.setattr(_inputs, "_BLOCK_ELEMENTS", 30)
    rng = np.random.default_rng(1)
    probs, labels = rng.dirichlet(np.full(3, 0.3), size=60), rng.integers(0, 3, size=60)
    whole = crossent.EvaluationState(3, keep=40).update(probs[20:], labels[20:], first_row=20)
    chunked = crossent.EvaluationState(3, keep=40)
    chunked.update(probs[20:40], labels[20:40], first_row=20).update(probs[40:], labels[40:])
    rows = sorted(row for row, _ in chunked.compute().most_surprising)
    assert rows == list(range(20, 60))
    assert chunked.compute().most_surprising == whole.compute().most_surprising


def test_a_merged_state_goes_on_after_the_rows_it_holds() -> None:
    # "for a merged state, the rows it holds" (branch mutation8: a merge that kept the
    # first operand's next row, 110 here, was let through)
    rng = np.random.default_rng(2)
    probs, labels = rng.dirichlet(np.full(3, 0.3), size=30), rng.integers(0, 3, size=30)
    first = crossent.EvaluationState(3, keep=30).update(probs[:10], labels[:10], first_row=100)
    second = crossent.EvaluationState(3, keep=30).update(probs[10:20], labels[10:20])
    merged = first.merge(second).update(probs[20:], labels[20:])
    rows = sorted(row for row, _ in merged.compute().most_surprising)
    assert rows == [*range(10), *range(20, 30), *range(100, 110)]
