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
    [
        (_PROBS, "ndarray"),
        (crossent.calibration_error(_PROBS, _LABELS), "CalibrationError"),
        (5, "int"),
    ],
    ids=["probs", "calibration_error", "int"],
)
def test_plot_refuses_what_is_not_a_diagram(value: object, kind: str) -> None:
    with pytest.raises(crossent.InputTypeError, match=rf"`diagram` must be a Reliab.*got {kind}"):
        crossent.plot_reliability_diagram(value)  # type: ignore[arg-type]


def test_plot_of_a_diagram_draws_its_bins() -> None:
    """A diagram still plots: the reliability panel and the histogram."""
    pytest.importorskip("matplotlib")
    diagram = crossent.reliability_diagram(_PROBS, _LABELS, bins=2)
    figure = crossent.plot_reliability_diagram(diagram)
    assert len(figure.axes) == 2
