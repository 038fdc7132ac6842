"""Issue 13, evaluation item: the update kernel's fold and trees without runtime overheads.

``_row_kernels_numba.folded_sum`` (a clean chunk's entropy terms in 256 interleaved
running sums, then a pairwise tree) now adds its first pass onto 0.0 instead of onto
zeroed lanes, the last 1 to 3 stretches in one pass (not one pass each), and sums its 256
lanes by ``tree_sum``: for 256 values ``lanes_tree``, one vector of them halved in
registers (lane j with lane j + 128, then + 64, ..., + 1: ``pairwise_sum``'s levels
without their loads, stores and runtime trip counts).  ``chunk_scores`` sums a whole
chunk's Brier, spherical and per-row entropy scores (256 rows) by ``tree_sum`` too.  The
same additions in the same order as before: pinned here bit for bit against that order
written in Python (lane l of values l, l + 256, ... one rounding a step from +0.0, then
the upper half onto the lower), for every number of stretches that takes a different
path (no whole pass of four, one or two, and a rest of 0 to 3; values in every lane, so
that a tree level or a stretch out of order shows), for the sign of a zero total (-0.0
terms: +0.0, as onto zeroed lanes), and against ``math.fsum`` (an independent, exactly
rounded oracle) within the bound of the roundings each value goes through.

Mutants caught (each checked by hand): the vector's lanes paired even with odd (lane
2j with 2j + 1) instead of j with j + 128; the vector read one value late; (with the
earlier loops of constant lengths) a level pairing lanes i and i + 1, a level dropped;
the rest pass of three stretches adding only two; the first pass onto the lanes' stale
contents instead of 0.0; the rest pass taken onto 0.0 after a whole pass;
``folded_sum`` compiled with "nsz" (a zero total of -0.0 terms comes back -0.0).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from crossent.calibration import _row_kernels

pytestmark = pytest.mark.skipif(not _row_kernels.available(), reason="needs Numba")

_LANES = 256


def _kernels() -> object:
    from crossent.calibration import _row_kernels_numba

    return _row_kernels_numba


def _tree(values: list[float]) -> float:
    """Zeros up to a power of two, then the upper half onto the lower, level by level,
    one Python float addition (one rounding) per pair."""
    size = 1
    while size < len(values):
        size *= 2
    level = values + [0.0] * (size - len(values))
    while len(level) > 1:
        half = len(level) // 2
        level = [level[i] + level[i + half] for i in range(half)]
    return level[0] if values else 0.0


def _folded(values: list[float]) -> float:
    """Lane l sums values l, l + 256, ... in order from +0.0 (zeros past the end), then
    the lanes by :func:`_tree`."""
    lanes = [0.0] * _LANES
    for t, value in enumerate(values):
        lanes[t % _LANES] = lanes[t % _LANES] + value
    return _tree(lanes)


def _bits(x: float) -> int:
    return int(np.float64(x).view(np.int64))


def _mixed(rng: np.random.Generator, count: int) -> np.ndarray:
    """Values of both signs over some 60 binades: any change of order shows in the bits."""
    return rng.normal(size=count) * np.exp2(rng.integers(-30, 30, size=count))


@pytest.mark.parametrize("count", [256, 1, 100, 255, 257, 512])
def test_issue13_tree_sum_is_the_pairwise_order(count: int) -> None:
    kernels = _kernels()
    rng = np.random.default_rng(count)
    for _ in range(5):
        values = _mixed(rng, count)
        buffer = np.full(1024, np.nan)  # past count: padded over by the fallback
        buffer[:count] = values
        got = kernels.tree_sum(buffer, count)
        assert _bits(got) == _bits(_tree(values.tolist()))
        # the tree's roundings: at most log2(count) + 1 a value (Higham, pairwise sum)
        bound = (math.log2(count) + 1) * 2.0**-53 * float(np.sum(np.abs(values)))
        assert abs(got - math.fsum(values.tolist())) <= bound


@pytest.mark.parametrize("stretches", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
def test_issue13_folded_sum_passes_keep_the_order(stretches: int) -> None:
    kernels = _kernels()
    rng = np.random.default_rng(100 + stretches)
    for short in (0, 1, 200):  # a whole last stretch, or one padded with zeros
        count = stretches * _LANES - short
        values = _mixed(rng, count)
        buffer = np.full(stretches * _LANES, np.nan)  # stale tail: padded over
        buffer[:count] = values
        lanes = np.full(_LANES, 1e300)  # stale lanes: the first pass starts from 0.0
        got = kernels.folded_sum(buffer, count, lanes)
        assert _bits(got) == _bits(_folded(values.tolist()))
        rounds = stretches + 9  # a lane's adds, then the tree's levels and the last add
        bound = rounds * 2.0**-53 * float(np.sum(np.abs(values)))
        assert abs(got - math.fsum(values.tolist())) <= bound


@pytest.mark.parametrize("count", [256, 768, 1024, 2560, 300])
def test_issue13_folded_sum_of_negative_zeros_is_positive_zero(count: int) -> None:
    kernels = _kernels()
    buffer = np.full(-(-count // _LANES) * _LANES, -0.0)
    got = kernels.folded_sum(buffer, count, np.empty(_LANES))
    assert _bits(got) == _bits(0.0)  # 0.0 + (-0.0) = +0.0 in every lane, as before
