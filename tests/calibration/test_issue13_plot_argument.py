"""Issue 13 hostile pass: ``plot_reliability_diagram`` of something that is not a diagram.

On main (fa36995) passing the predictions, a ``CalibrationError`` or a number raised
``AttributeError`` ("'numpy.ndarray' object has no attribute 'count'") from inside the
drawing code; it is now an ``InputTypeError`` naming ``diagram`` and how to make one,
raised before matplotlib is imported.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent

_PROBS = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
_LABELS = np.array([0, 1, 1])


@pytest.mark.parametrize(
    ("value", "kind"),
    [(_PROBS, "ndarray"), (None, "CalibrationError"), (5, "int")],
    ids=["probs", "calibration_error", "int"],
)
def test_plot_refuses_what_is_not_a_diagram(value: object, kind: str) -> None:
    if kind == "CalibrationError":
        # made here, not at collection: each xdist worker collects every module, and
        # the first call compiles the evaluation kernel (17 s of CPU with a cold cache)
        value = crossent.calibration_error(_PROBS, _LABELS)
    with pytest.raises(crossent.InputTypeError, match=rf"`diagram` must be a Reliab.*got {kind}"):
        crossent.plot_reliability_diagram(value)  # type: ignore[arg-type]


def test_plot_of_a_diagram_draws_its_bins() -> None:
    """A diagram still plots: the reliability panel and the histogram."""
    pytest.importorskip("matplotlib")
    diagram = crossent.reliability_diagram(_PROBS, _LABELS, bins=2)
    figure = crossent.plot_reliability_diagram(diagram)
    assert len(figure.axes) == 2


@pytest.mark.parametrize("value", ["no", "yes", 1, None])
def test_plot_logit_axis_must_be_a_bool(value: object) -> None:
    """Hostile API pass: main read ``logit_axis`` by truth value (``"no"`` drew a logit
    axis; None a linear one), as ``report`` once read its flags. Fails on main."""
    diagram = crossent.reliability_diagram(_PROBS, _LABELS, bins=2)
    with pytest.raises(crossent.InputTypeError, match=r"`logit_axis` must be True or False"):
        crossent.plot_reliability_diagram(diagram, logit_axis=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [5, b"title", ["a"]])
def test_plot_title_must_be_a_string(value: object) -> None:
    """Main passed it to matplotlib, which drew ``str(value)`` (``"b'title'"``). Fails
    on main."""
    diagram = crossent.reliability_diagram(_PROBS, _LABELS, bins=2)
    with pytest.raises(crossent.InputTypeError, match=r"`title` must be a str or None"):
        crossent.plot_reliability_diagram(diagram, title=value)  # type: ignore[arg-type]


def test_plot_takes_a_numpy_bool() -> None:
    pytest.importorskip("matplotlib")
    diagram = crossent.reliability_diagram(_PROBS, _LABELS, bins=2)
    figure = crossent.plot_reliability_diagram(diagram, logit_axis=np.bool_(True), title="t")
    assert figure.axes[0].get_title() == "t"
