"""Issue 13, evaluation item: ``folded_sum`` adds four stretches a pass over its lanes.

``_row_kernels_numba.folded_sum`` (the clean chunks' entropy in ``totals``) sums lane l
of values l, l + 256, l + 512, ... one after another; it now takes four stretches a pass
(``lanes[i] = (((lanes[i] + a[i]) + b[i]) + c[i]) + d[i]``, then one stretch a pass for
the rest), a quarter of the lanes' loads and stores, the same adds in the same order.
Checked bit for bit against a lane summed in Python, stretch after stretch: the values
sit in one lane only (the others zero), so that the pairwise tree over the lanes
returns that lane's sum exactly and any other order of its adds shows (mixed signs and
magnitudes, several lanes and stretch counts: whole passes of four, a rest of one to
three, fewer than four).  Mutants caught: two stretches of a pass swapped (a with b, c
with d), the rest loop dropped or starting one pass late.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")


def _kernels():
    from crossent.calibration import _row_kernels_numba

    return _row_kernels_numba


@pytest.mark.parametrize("stretches", [1, 3, 4, 5, 8, 10, 11, 17])
@pytest.mark.parametrize("lane", [0, 37, 255])
def test_issue13_folded_sum_adds_each_lane_in_stretch_order(stretches: int, lane: int) -> None:
    kernels = _kernels()
    rng = np.random.default_rng(1000 * stretches + lane)
    for _ in range(20):
        count = 256 * (stretches - 1) + lane + 1  # the last value in the lane
        values = np.zeros(count)
        terms = rng.normal(size=stretches) * np.exp2(rng.integers(-40, 40, size=stretches))
        values[lane::256] = terms
        buffer = np.full(256 * stretches, np.nan)  # stale tail: padded over
        buffer[:count] = values
        expected = 0.0
        for term in terms:
            expected = expected + float(term)  # one rounding a stretch, in order
        got = kernels.folded_sum(buffer, count, np.empty(256))
        assert np.float64(got).view(np.int64) == np.float64(expected).view(np.int64)
