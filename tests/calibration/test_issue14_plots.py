"""Issue 14: the logit-axis reliability diagram draws every bin and legible ticks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import crossent


def _figure(logit_axis: bool) -> tuple[object, crossent.ReliabilityDiagram]:
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4000, 3)) * 4
    labels = rng.integers(0, 3, size=4000)
    diagram = crossent.reliability_diagram(logits, labels, form="logits", bins=10)
    return crossent.plot_reliability_diagram(diagram, logit_axis=logit_axis), diagram


@pytest.mark.parametrize("logit_axis", [False, True])
def test_issue14_item_logit_axis_draws_every_bins_bar(logit_axis: bool) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure, diagram = _figure(logit_axis)
    FigureCanvasAgg(figure).draw()
    bottom = figure.axes[1]
    # one bar a non-empty bin (branch bins2: an empty bin's bar, of no height, is not drawn)
    occupied = diagram.count[diagram.count > 0]
    for bar, count in zip(bottom.patches, occupied, strict=True):
        extent = bar.get_window_extent()
        assert np.isfinite([extent.x0, extent.x1]).all()
        assert extent.width > 0.5
        assert bar.get_height() == count
    assert diagram.count[-1] > 0  # the last bin holds the most confident predictions


def test_issue14_item_logit_axis_tick_labels_do_not_overlap() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure, _ = _figure(True)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    for axis in (figure.axes[0].yaxis, figure.axes[1].xaxis):
        boxes = [
            label.get_window_extent(renderer)
            for label in axis.get_ticklabels()
            if label.get_visible() and label.get_text()
        ]
        assert len(boxes) >= 5
        for a, b in itertools.pairwise(boxes):
            assert not a.overlaps(b), (a, b)


def test_a_title_falls_back_to_a_font_that_has_its_characters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The report's figures fall back to an installed font with a character (a class in
    Chinese); ``plot_reliability_diagram``'s title did not: a title in Chinese drew empty
    boxes with "Glyph 29483 missing from font(s) DejaVu Sans". U+210A (script small g)
    is in STIXGeneral, which matplotlib ships, not in DejaVu Sans: with STIXGeneral among
    the fallbacks it is drawn without a warning (on main: "Glyph 8458 missing")."""
    import warnings

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    monkeypatch.setattr("crossent._fonts.FALLBACK_FONTS", ("DejaVu Sans", "STIXGeneral"))
    _, diagram = _figure(False)
    figure = crossent.plot_reliability_diagram(diagram, title="\u210a calibration")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FigureCanvasAgg(figure).draw()
    assert figure.axes[0].get_title() == "\u210a calibration"
