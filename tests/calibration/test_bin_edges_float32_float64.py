"""Confidences on the equal-width edges, in float32 and float64: where each path puts them.

Declared in ``crossent.calibration._binning`` ("Confidences on an edge"): the edges are
``numpy.linspace(0, 1, bins + 1)`` in float64 and every path compares the exactly widened
confidence with them, so the bins are ``numpy.histogram``'s (``closed="left"``) and
scikit-learn's ``calibration_curve``'s (``closed="right"``) number for number.  Float64
0.3 with 10 bins is in bin 2 (the edge is 0.30000000000000004), float32 0.3 in bin 3;
0.1 and 0.7 land in one bin in both dtypes.

Mutant-guarded (these pass on main by design): edges formed as ``arange(bins + 1) / bins``
(correctly rounded) put float64 0.3 in bin 3; a comparison in the confidences' dtype
(torchmetrics' float32 edges) puts float32 0.7 in bin 7; a kernel that stops correcting
``floor(c * bins)`` by the edges puts float64 0.3 (0.3 * 10 = 3.0000000000000004) in bin 3.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent


def _on_and_beside_edges(bins: int, dtype: type) -> np.ndarray:
    """Each edge's nearest value in ``dtype`` and its two neighbours, in [0, 1]."""
    values = []
    for edge in np.linspace(0.0, 1.0, bins + 1):
        for near in (dtype(edge), dtype(np.float64(edge))):
            values += [near, np.nextafter(near, dtype(0)), np.nextafter(near, dtype(2))]
    values += [dtype(k / bins) for k in range(bins + 1)]
    kept = np.array([v for v in values if 0.0 <= v <= 1.0], dtype=dtype)
    return np.unique(kept)


def _oracle_counts(confidence: np.ndarray, bins: int, closed: str) -> np.ndarray:
    """numpy.histogram (closed left) or calibration_curve's searchsorted (closed right)."""
    widened = confidence.astype(np.float64)
    if closed == "left":
        return np.histogram(widened, bins=bins, range=(0.0, 1.0))[0]
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.bincount(np.searchsorted(edges[1:-1], widened), minlength=bins)


def _path_counts(
    confidence: np.ndarray, bins: int, closed: str, dtype: type
) -> dict[str, np.ndarray]:
    """The bin counts of the positive class's probability ``c`` on every path."""
    probs = np.stack([dtype(1) - confidence, confidence], axis=1).astype(dtype)
    labels = np.ones(confidence.shape[0], dtype=np.int64)
    options = {"bins": bins, "closed": closed}
    counts = {
        "calibration_error positive-class": crossent.calibration_error(
            probs, labels, scope="positive-class", **options
        ).statistics.count,
        "calibration_error class-wise": crossent.calibration_error(
            probs, labels, scope="class-wise", **options
        ).statistics.count[1],
        "calibration_error 1-D": crossent.calibration_error(
            confidence, labels, scope="positive-class", **options
        ).statistics.count,
        "reliability_diagram": crossent.reliability_diagram(
            probs, labels, scope="positive-class", **options
        ).count,
    }
    for scope in ("positive-class", "class-wise"):
        state = crossent.EvaluationState(2, scope=scope, **options).update(probs, labels)
        count = state.calibration().statistics.count
        counts[f"EvaluationState {scope}"] = count[1] if count.ndim == 2 else count
    upper = confidence >= 0.5  # the top label is c itself: the Numba kernel's path
    if upper.any():
        counts["calibration_error top-label"] = crossent.calibration_error(
            probs[upper], labels[upper], **options
        ).statistics.count
        counts["EvaluationState top-label"] = (
            crossent.EvaluationState(2, **options)
            .update(probs[upper], labels[upper])
            .calibration()
            .statistics.count
        )
    return counts


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("closed", ["left", "right"])
@pytest.mark.parametrize("bins", [3, 7, 10, 15, 98])
def test_every_path_bins_edge_values_as_numpy_histogram(
    bins: int, closed: str, dtype: type
) -> None:
    confidence = _on_and_beside_edges(bins, dtype)
    for name, count in _path_counts(confidence, bins, closed, dtype).items():
        subset = confidence if "top-label" not in name else confidence[confidence >= 0.5]
        expected = _oracle_counts(subset, bins, closed)
        np.testing.assert_array_equal(count, expected, err_msg=name)


def _bin_of(value: float | np.floating, bins: int, closed: str = "left") -> int:
    dtype = type(value) if isinstance(value, np.floating) else np.float64
    counts = _path_counts(np.array([value], dtype=dtype), bins, closed, dtype)
    found = {name: int(np.argmax(count)) for name, count in counts.items()}
    assert len(set(found.values())) == 1, found  # every path agrees
    return next(iter(found.values()))


def test_declared_bins_of_point_one_point_three_point_seven() -> None:
    assert _bin_of(np.float64(0.1), 10) == 1
    assert _bin_of(np.float32(0.1), 10) == 1
    assert _bin_of(np.float64(0.3), 10) == 2  # below the edge 0.30000000000000004
    assert _bin_of(np.float32(0.3), 10) == 3  # 0.30000001192...
    assert _bin_of(np.float64(0.7), 10) == 6  # below the edge 0.70000000000000007
    assert _bin_of(np.float32(0.7), 10) == 6  # 0.69999998807...
    # an exact binary fraction on an edge numpy.linspace forms an ulp low (98 bins)
    assert np.linspace(0.0, 1.0, 99)[49] == 0.49999999999999994
    assert _bin_of(np.float64(0.5), 98, "left") == 49
    assert _bin_of(np.float64(0.5), 98, "right") == 49
    assert _bin_of(np.float64(0.5), 96, "right") == 47  # the edge is 0.5 itself
