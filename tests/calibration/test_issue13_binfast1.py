"""A 1-D binary column's block totals formed from what the request asks (issue 13,
branch binfast1): ``_summaries._binary_totals`` forms the surprisal, Brier, spherical
and entropy sums of ``p`` each only where asked (binexact1 formed every per-row number,
:func:`_summaries.binary_summaries`, then reduced them: ``totals_of``), and the hits and
bins from the totals kernel's pass over the rows ``[1 - p, p]``.  The same bits as
binexact1's reduction of the summaries, on hard ``p`` and random ones."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crossent.calibration import _summaries
from crossent.calibration._binning import assign_uniform_bins
from crossent.calibration._summaries import TotalsRequest

_HARD = [
    0.0,
    1e-300,
    1e-20,
    2.0**-54,
    1e-3,
    0.3,
    0.5 - 2.0**-53,
    0.5,
    0.6,
    14 / 15,
    1 - 2.0**-53,
    1.0,
]

_EVERYTHING = {"top": True, "entropy": True, "brier": True, "spherical": True, "classes": 2}


def _column(finite: bool) -> tuple[np.ndarray, np.ndarray]:
    """Every hard ``p`` with both labels (but the two of surprisal ``+inf`` if
    ``finite``), then 3500 random rows (one block)."""
    rng = np.random.default_rng(13)
    p = np.concatenate([np.repeat(_HARD, 2), rng.random(3000), 10.0 ** rng.uniform(-30, 0, 500)])
    labels = np.concatenate([np.tile([0, 1], len(_HARD)), rng.integers(0, 2, 3500)])
    kept = slice(None) if not finite else ~((p == 0) & (labels == 1) | (p == 1) & (labels == 0))
    return p[kept], labels[kept].astype(np.intp)


@pytest.mark.parametrize(
    "asked",
    [
        {},
        {"surprisal": False, "brier": True},
        {"spherical": True, "keep": 7},
        {"surprisal": False, "top": True, "bins": 15},
        {"surprisal": False, "top": True, "bins": 10, "closed": "right"},
        {**_EVERYTHING, "bins": 0, "keep": 3},
        {**_EVERYTHING, "bins": 15, "keep": 10, "errors": True},
    ],
)
@pytest.mark.parametrize("finite", [True, False])
def test_block_totals_equal_the_summaries_reduced(asked, finite):
    p, labels = _column(finite)
    request = TotalsRequest(**asked)
    rows = np.stack([1.0 - p, p], axis=1)
    got = _summaries._binary_totals(p, labels, request, rows)
    want = _summaries.totals_of(_summaries.binary_summaries(p, labels), request)
    assert got.sums.tobytes() == want.sums.tobytes()
    np.testing.assert_array_equal(got.class_count, want.class_count)
    assert got.class_surprisal.tobytes() == want.class_surprisal.tobytes()
    assert got.found == want.found
    assert (got.bins is None) == (want.bins is None)
    if got.bins is not None and want.bins is not None:  # (the kernel's, NumPy's)
        for field in ("count", "confidence_sum", "hits"):
            assert getattr(got.bins, field).tobytes() == getattr(want.bins, field).tobytes()
    if request.errors and got.bins is not None:  # the state's: each bin's sum + its error
        confidence = np.maximum(p, 1.0 - p)
        index = assign_uniform_bins(confidence, request.bins, request.closed)
        assert got.bins.error is not None
        for b in range(request.bins):
            exact = math.fsum(confidence[index == b].tolist())
            found = got.bins.confidence_sum[b] + got.bins.error[b]
            assert abs(found - exact) <= 2**-52 * exact, (b, found, exact)


def test_bins_without_numba_equal_the_kernels(monkeypatch):
    """Without Numba the hits and bins are NumPy's (``binary_top``, ``bin_statistics``):
    the same bits as the kernel's pass."""
    p, labels = _column(False)
    request = TotalsRequest(surprisal=False, top=True, bins=15, closed="right")
    rows = np.stack([1.0 - p, p], axis=1)
    kernel = _summaries._binary_totals(p, labels, request, rows)
    monkeypatch.setattr(_summaries._row_kernels, "available", lambda: False)
    plain = _summaries._binary_totals(p, labels, request, rows)
    assert kernel.sums.tobytes() == plain.sums.tobytes()
    assert kernel.bins is not None
    assert plain.bins is not None
    for field in ("count", "confidence_sum", "hits"):
        assert getattr(kernel.bins, field).tobytes() == getattr(plain.bins, field).tobytes()
