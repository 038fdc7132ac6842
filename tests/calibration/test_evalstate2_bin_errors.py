"""Issue 13, stop 64 (branch evalstate2): the bins' rounding errors only where asked for
and only where an addition can round.

evalstate1 made the ``totals`` kernel find every bin addition's rounding error (TwoSum)
for every caller: ``calibration_error`` paid about 12 % for errors it never needed (it
has the rows, and reads them again for the rare doubtful bins), and
``EvaluationState.update`` paid a TwoSum per row even for float32 rows, whose sums in a
bin at or above :math:`2^{\\lceil \\log_2 n \\rceil - 30}` are exact
(``_row_kernels.rounding_bins``).

Oracles: ``numpy.spacing`` of the float32 confidences (the bound's premise) and
``fractions.Fraction`` sums of the confidences (exact).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import crossent
from crossent.calibration import _row_kernels
from crossent.calibration._binning import assign_uniform_bins, uniform_edges


def _smallest_float32_in(edges: np.ndarray, b: int, closed: str) -> np.float32:
    """The smallest float32 that the bins put in bin ``b`` (``b >= 1``)."""
    v = np.float32(edges[b])
    if v < edges[b] or (closed == "right" and v == edges[b]):
        v = np.nextafter(v, np.float32(2))
    return v


@pytest.mark.parametrize("bins", [10, 15, 1000])
def test_rounding_bins_at_the_bound(bins: int) -> None:
    # bins from rounding_bins on: every float32 confidence in them is a multiple of the
    # spacing u of its bin's smallest float32, and rows of at most 1 sum to at most
    # rows <= 2^53 u (exact); the bin below it could round (rows > 2^53 u there)
    edges = uniform_edges(bins)
    for k in range(31):
        for rows in (2**k, 2**k + 1):
            first = _row_kernels.rounding_bins(edges, rows, single=True)
            assert 1 <= first <= bins
            for closed in ("left", "right"):
                for b in (first, first - 1):
                    if not 1 <= b < bins:
                        continue
                    u = float(np.spacing(_smallest_float32_in(edges, b, closed)))
                    assert (rows <= 2.0**53 * u) == (b == first), (bins, rows, b, closed)
            assert _row_kernels.rounding_bins(edges, rows, single=False) == bins
    # 10 bins: only bin 0 while the block has at most 2^26 rows (edge 0.1 >= 2^-4)
    assert _row_kernels.rounding_bins(uniform_edges(10), 2**26, single=True) == 1
    assert _row_kernels.rounding_bins(uniform_edges(10), 2**26 + 1, single=True) == 2
    assert _row_kernels.rounding_bins(uniform_edges(10), 2**29, single=True) == 5
    assert _row_kernels.rounding_bins(uniform_edges(10), 2**29 + 1, single=True) == 10


def test_the_top_bins_sum_rounds_one_row_past_the_bound() -> None:
    # at 2^29 rows of float32 confidences <= 1 (multiples of 2^-24) the largest partial
    # sum is a float64; one row more and it need not be: rounding_bins' edge is tight
    u = Fraction(1, 2**24)
    at_bound = 2**29 - u  # 2^29 - 1 rows of 1 and one of 1 - 2^-24
    past = 2**29 + 1 - u  # 2^29 rows of 1 and one of 1 - 2^-24
    assert Fraction(float(at_bound)) == at_bound
    assert Fraction(float(past)) != past


def _state_sums(probs: np.ndarray, labels: np.ndarray, bins: int) -> list[Fraction]:
    state = crossent.EvaluationState(probs.shape[1], bins=bins).update(
        probs, labels, validate=False
    )
    stats = state.compute().calibration.statistics
    assert stats.error is not None
    return [
        Fraction(float(s)) + Fraction(float(e))
        for s, e in zip(stats.confidence_sum, stats.error, strict=True)
    ]


def _exact_sums(probs: np.ndarray, bins: int) -> list[Fraction]:
    confidence = probs.max(axis=1).astype(np.float64)
    index = assign_uniform_bins(confidence, bins, "left")
    return [sum(map(Fraction, confidence[index == b].tolist()), Fraction(0)) for b in range(bins)]


def test_float32_state_sums_exact_in_every_bin() -> None:
    # near-uniform rows of 40 classes put confidences below 0.1 (bin 0: TwoSum) beside
    # the others (plain float64 adds, exact by the bound); unchecked rows of tiny
    # confidences (3.3e-9, 2^-52 apart) make bin 0's float64 sum round
    rng = np.random.default_rng(3)
    z = rng.standard_normal((3000, 40)) * rng.uniform(0.05, 3.0, (3000, 1))
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    probs[2000::97] = 0.0
    probs[2000::97, 0] = np.float32(3.3e-9)
    labels = rng.integers(0, 40, 3000)
    exact = _exact_sums(probs, 10)
    assert exact[0] != 0  # bin 0 holds rows
    assert _state_sums(probs, labels, 10) == exact


def test_a_confidence_above_one_keeps_every_bins_errors() -> None:
    # unchecked float32 rows: 2^30 and 1 - 2^-24 in the last bin, whose float64 sum
    # rounds (beyond rounding_bins' premise, confidences <= 1): the kernel keeps every
    # bin's errors from that chunk on, and S + E is the exact sum
    probs = np.zeros((6, 2), dtype=np.float32)
    probs[:, 0] = [1 - 2.0**-24, 2.0**30, 1 - 2.0**-24, 0.95, 0.3, 1 - 2.0**-24]
    probs[:, 1] = [0, 0, 0, 0, 0.7, 0]
    labels = np.zeros(6, dtype=np.intp)
    assert _state_sums(probs, labels, 10) == _exact_sums(probs, 10)


@pytest.mark.parametrize("closed", ["left", "right"])
def test_calibration_error_keeps_no_errors_and_still_finds_perfect_bins(closed: str) -> None:
    # the rows are at hand: its pass forms no rounding errors, and a perfectly
    # calibrated bin's mean comes from the rows (report3's refined_means): 0
    probs = np.tile([0.7, 0.2, 0.1], (1000, 1))
    labels = np.where(np.arange(1000) % 10 < 7, 0, 1)
    result = crossent.calibration_error(probs, labels, closed=closed)
    assert result.statistics.error is None
    assert result.value == 0.0
