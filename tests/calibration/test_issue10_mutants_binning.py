"""Issue 10, "Tests that let bugs through": tests that kill mutants of ``calibration/_binning.py``.

The mutation run of ``_binning.py`` (``tests/MUTATION.md``) left mutants that the
existing tests could not see: they checked values (which do not depend on which bin
is called which), substrings of messages, and the streaming equal-mass bins only within
loose tolerances.  Each test here was seen failing on the mutants it names.

The oracles are written here: bin membership by direct comparison with the edges
(``[a, b)`` with the last bin closed, or ``(a, b]`` with the first closed), the three
per-bin sums by loops, the equal-mass boundaries by a search over all cumulative counts,
and the fine grid from its definition (uniform in ``logit(c)`` over ``[-16, 16]``,
``scipy.special.logit``).
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest
from scipy.special import expit, logit

import crossent
from crossent.calibration import _binning

from tolerances import CLOSED_FORM, SUM

RNG = np.random.default_rng(20191010)


def _member(c: float, edges: np.ndarray, b: int, closed: str) -> bool:
    """Whether ``c`` is in bin ``b`` of ``edges`` (direct comparisons)."""
    last = edges.size - 2
    if closed == "left":
        upper_ok = c <= edges[b + 1] if b == last else c < edges[b + 1]
        return bool(edges[b] <= c and upper_ok)
    lower_ok = c >= edges[b] if b == 0 else c > edges[b]
    return bool(lower_ok and c <= edges[b + 1])


def _bin_sums(
    confidence: np.ndarray, hits: np.ndarray, edges: np.ndarray, closed: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    bins = edges.size - 1
    count, conf, hit = np.zeros(bins), np.zeros(bins), np.zeros(bins)
    for c, h in zip(confidence, hits, strict=True):
        (b,) = [b for b in range(bins) if _member(float(c), edges, b, closed)]
        count[b] += 1
        conf[b] += c
        hit[b] += h
    return count, conf, hit


def _values(count: np.ndarray, conf: np.ndarray, hit: np.ndarray) -> dict[str, float]:
    full = count > 0
    gap = hit[full] / count[full] - conf[full] / count[full]
    n = count.sum()
    return {
        "l1": float(np.sum(count[full] / n * np.abs(gap))),
        "l2": math.sqrt(float(np.sum(count[full] / n * gap**2))),
        "max": float(np.max(np.abs(gap))),
    }


def _positive_class_data(n: int, bins: int, rng: np.random.Generator) -> np.ndarray:
    """p_1 over all of [0, 1], with exact 0, 1 and values exactly on the edges."""
    p = rng.uniform(0.0, 1.0, size=n)
    p[:4] = [0.0, 1.0, 1.0, 0.0]
    p[4 : 4 + bins - 1] = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    return p


@pytest.mark.parametrize("closed", ["left", "right"])
@pytest.mark.parametrize("binning", ["uniform", "quantile"])
@pytest.mark.parametrize("bins", [1, 2, 5, 8])
def test_issue10_kills_bin_membership_statistics_and_edges(
    closed: str, binning: str, bins: int
) -> None:
    # Mutants: the inner edges ``edges[2:-1]`` / ``edges[1:-2]`` / ``edges[1:+1]`` of
    # ``assign_bins`` (the first shifts every bin's name, which a value cannot see),
    # ``uniform_edges``' and ``quantile_edges``' ends and counts, ``bins`` >= 2.
    rng = np.random.default_rng(bins)
    p = _positive_class_data(60, bins, rng)
    labels = (rng.random(p.size) < p * 0.8).astype(np.intp)
    result = crossent.calibration_error(
        p, labels, scope="positive-class", bins=bins, binning=binning, closed=closed
    )
    if binning == "uniform":
        edges = np.linspace(0.0, 1.0, bins + 1)
    else:
        edges = np.quantile(p, np.arange(bins + 1) / bins)
        edges[0], edges[-1] = 0.0, 1.0
    np.testing.assert_allclose(result.edges, edges, rtol=0, atol=1e-15)
    count, conf, hit = _bin_sums(p, labels.astype(np.float64), result.edges, closed)
    np.testing.assert_array_equal(result.statistics.count, count)
    np.testing.assert_allclose(result.statistics.confidence_sum, conf, **SUM.tol())
    np.testing.assert_array_equal(result.statistics.hits, hit)
    for norm, value in _values(count, conf, hit).items():
        got = crossent.calibration_error(
            p, labels, scope="positive-class", bins=bins, binning=binning, closed=closed, norm=norm
        )
        assert got.value == pytest.approx(value, **SUM.rel_abs())


@pytest.mark.parametrize("n", [1, 2, 7])
def test_issue10_kills_quantile_edges_of_few_examples(n: int) -> None:
    # Mutant: ``confidence.size == 1`` (one example took the uniform edges).  The inner
    # edges are the empirical quantiles of the confidences, whatever their number.
    p = np.linspace(0.3, 0.6, n)
    result = crossent.calibration_error(
        p, np.ones(n, np.intp), scope="positive-class", bins=4, binning="quantile"
    )
    expected = np.quantile(p, [0.0, 0.25, 0.5, 0.75, 1.0])
    expected[0], expected[-1] = 0.0, 1.0
    np.testing.assert_allclose(result.edges, expected, rtol=0, atol=1e-15)


def test_issue10_kills_single_example_bins_in_reliability_diagram() -> None:
    # Mutants: ``count > 1`` in ``mean_confidence`` / ``accuracy`` (a bin of one example
    # shown as empty).
    p = np.array([0.05, 0.55, 0.6, 0.95])
    labels = np.array([0, 1, 0, 1])
    d = crossent.reliability_diagram(p, labels, bins=10, scope="positive-class")
    full = d.count > 0
    np.testing.assert_array_equal(d.count[full], [1, 2, 1])
    np.testing.assert_allclose(d.confidence[full], [0.05, 0.575, 0.95], **CLOSED_FORM.tol())
    np.testing.assert_array_equal(d.accuracy[full], [0.0, 0.5, 1.0])
    assert np.all(np.isnan(d.confidence[~full]))
    assert np.all(np.isnan(d.accuracy[~full]))


def test_issue10_kills_one_example_calibration_error() -> None:
    # Mutant: ``total == 1`` returned 0 for one example instead of its gap.
    for norm in ("l1", "l2", "max"):
        got = crossent.calibration_error([[0.7, 0.3]], [1], norm=norm).value
        assert got == pytest.approx(0.7, **CLOSED_FORM.rel_abs())


def test_issue10_kills_bin_statistics_is_frozen() -> None:
    # Mutant: ``@dataclass(frozen=False)``: the statistics a result carries must not be
    # replaceable (the result is a record of what was computed).
    result = crossent.calibration_error([[0.7, 0.3]], [1])
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.statistics.count = np.zeros(15)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"binning": "width"}, "`binning` must be 'uniform' or 'quantile'; got 'width'"),
        ({"closed": "both"}, "`closed` must be 'left' or 'right'; got 'both'"),
        ({"norm": "l3"}, "`norm` must be 'l1', 'l2' or 'max'; got 'l3'"),
    ],
)
def test_issue10_kills_option_messages_are_exact(options: dict, message: str) -> None:
    # Mutants: each message wrapped in ``XX...XX`` (the old test matched a substring).
    with pytest.raises(crossent.InputError, match=f"^{re.escape(message)}$"):
        crossent.calibration_error([[0.7, 0.3]], [1], **options)


# ------------------------------------------------------------ the streaming fine grid


def test_issue10_kills_fine_grid_definition() -> None:
    # Mutants of ``FINE_CELLS``, ``_LOGIT_LIMIT`` and ``fine_edges``: 4096 cells uniform
    # in logit over [-16, 16], plus one cell below and one above, edges from 0 to 1.
    edges = _binning.fine_edges()
    assert _binning.FINE_CELLS == 4096
    assert edges.shape == (4096 + 3,)
    assert edges[0] == 0.0
    assert edges[-1] == 1.0
    np.testing.assert_allclose(edges[1:-1], expit(np.linspace(-16.0, 16.0, 4097)), rtol=1e-15)
    np.testing.assert_allclose(logit(edges[1:-1]), np.linspace(-16.0, 16.0, 4097), atol=1e-9)


def test_issue10_kills_fine_cell_membership() -> None:
    # Mutants of ``fine_cell``: every confidence lies in its cell's edges; 0 and values
    # below logit -16 in cell 0, 1 and values from logit +16 in the last cell.
    edges = _binning.fine_edges()
    inner = RNG.uniform(-17.0, 17.0, size=4000)
    c = np.concatenate(
        [expit(inner), [0.0, 1e-300, 1e-8, 0.5, 1.0 - 1e-12, 1.0], RNG.uniform(0.0, 1.0, 500)]
    )
    cell = _binning.fine_cell(c)
    assert cell.dtype == np.intp
    assert cell.min() >= 0
    assert cell.max() <= 4096 + 1
    # A confidence may sit a rounding error beyond its edge: compare in logit space.
    lo, hi = edges[cell], edges[np.minimum(cell + 1, edges.size - 1)]
    slack = 1e-9
    with np.errstate(divide="ignore"):
        lc, llo, lhi = logit(c), logit(lo), logit(hi)
    assert np.all((lc >= llo - slack) & ((lc < lhi + slack) | (c == 1.0)))
    assert cell[c == 0.0].tolist() == [0]
    assert cell[c == 1.0].tolist() == [4097]
    assert np.all(cell[c < expit(-16.0) * (1 - 1e-9)] == 0)
    assert np.all(cell[c > expit(16.0) * (1 + 1e-12)] == 4097)
    assert np.all(cell[(c > expit(-15.99)) & (c < expit(15.99))] >= 1)
    assert np.all(cell[(c > expit(-15.99)) & (c < expit(15.99))] <= 4096)


def _group_masses(count: np.ndarray, bins: int) -> np.ndarray:
    """Masses of ``bins`` groups whose boundaries are the cumulative counts nearest
    ``k * total / bins`` (searched over every cell; a tie goes to the smaller sum).
    Groups that would end at a last cell holding mass are left empty below the last
    group, which holds that cell (issue 13, evalleft: the bin whose interval holds 1)."""
    cumulative = np.cumsum(count)
    total = float(cumulative[-1])
    bounds = []
    for k in range(1, bins):
        target = total * k / bins
        best = min(cumulative, key=lambda s: (abs(float(s) - target), float(s)))
        bounds.append(float(best))
    masses = np.diff(np.concatenate([[0.0], bounds, [total]]))
    tops = sum(bound == total for bound in bounds) if count[-1] > 0 else 0
    below = bins - 1 - tops
    return np.concatenate([masses[:below], np.zeros(tops), [masses[below:].sum()]])


COUNTS = [
    np.array([1.0, 2.0, 1.0]),  # target 2 is 1 away from 1 and from 3: the tie
    np.array([0.0, 0.0, 5.0, 0.0, 3.0, 0.0, 4.0]),
    np.array([3.0, 0.0, 0.0, 0.0, 0.0, 9.0]),  # mass in the first and the last cell
    np.array([7.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 6.0]),
]


@pytest.mark.parametrize("bins", [2, 3, 4])
@pytest.mark.parametrize("count", COUNTS, ids=range(len(COUNTS)))
def test_issue10_kills_equal_mass_grouping_of_small_counts(count: np.ndarray, bins: int) -> None:
    # Mutants of ``group_fine_cells``: the total (``cumulative[-2]``), the targets, the
    # lower/upper candidates and the tie (``<`` for ``<=``).
    group = _binning.group_fine_cells(count, bins)
    assert group.shape == count.shape
    assert np.all(np.diff(group) >= 0)
    assert group.min() >= 0
    assert group.max() <= bins - 1
    masses = np.bincount(group, weights=count, minlength=bins)
    np.testing.assert_array_equal(masses, _group_masses(count, bins))


@pytest.mark.parametrize("seed", range(4))
def test_issue10_kills_equal_mass_grouping_of_fine_cells(seed: int) -> None:
    # The same on the real grid: counts of confidences in the fine cells, mass in the
    # first and last cells too.
    rng = np.random.default_rng(seed)
    c = np.concatenate([expit(rng.normal(2.0, 3.0, size=3000)), [0.0, 1.0, 1.0]])
    count = np.bincount(_binning.fine_cell(c), minlength=4096 + 2).astype(np.float64)
    for bins in (3, 10):
        masses = np.bincount(_binning.group_fine_cells(count, bins), weights=count, minlength=bins)
        np.testing.assert_array_equal(masses, _group_masses(count, bins))


def test_issue10_kills_streaming_quantile_bins_statistics() -> None:
    # The streamed state joins the fine cells into equal-mass bins: its per-bin count
    # and sums equal those of the examples in the joined cells (direct oracle).
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(500, 2)) * 3.0
    labels = rng.integers(0, 2, size=500)
    state = crossent.EvaluationState(2, binning="quantile", bins=4)
    state.update(logits, labels, form="logits")
    result = state.calibration()
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    confidence = p.max(axis=1)
    hits = (p.argmax(axis=1) == labels).astype(np.float64)
    count = np.bincount(_binning.fine_cell(confidence), minlength=4096 + 2).astype(np.float64)
    masses = _group_masses(count, 4)
    np.testing.assert_array_equal(result.statistics.count, masses)
    bounds = np.cumsum(masses)
    order = np.argsort(confidence, kind="stable")
    starts = np.concatenate([[0], bounds[:-1]]).astype(int)
    for b, (lo, hi) in enumerate(zip(starts, bounds.astype(int), strict=True)):
        members = order[lo:hi]
        assert result.statistics.confidence_sum[b] == pytest.approx(
            confidence[members].sum(), **SUM.rel_abs()
        )
        assert result.statistics.hits[b] == hits[members].sum()
