"""Issue 13, ``crossent report`` end to end: the binned bootstrap's gather, compiled.

A replicate of the calibration error's bootstrap summed the drawn rows of each bin as
``(conf + 1j * hits)[rows].sum()`` (a 16-byte copy of each drawn row, then NumPy's
pairwise sum); ``_bootstrap_numba.gathered_sums`` sums them in place in NumPy's
order.  The oracle is that NumPy expression: the same bits for every count up to 3000
and for large ones, values spread over many magnitudes (so that another order of the
additions would show), hits 0/1; and the intervals (report's and
``bootstrap_interval``'s) the same bits as with NumPy's gather.
"""

from __future__ import annotations

import numpy as np
import pytest

import crossent
from crossent.calibration import _bootstrap, _row_kernels

pytestmark = pytest.mark.skipif(not _row_kernels.available(), reason="needs Numba")


def _values(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    conf = rng.random(n) * 10.0 ** rng.integers(-12, 3, size=n)
    hits = (rng.random(n) < 0.6).astype(np.float64)
    return conf, hits


def test_the_sums_are_numpys_bits_for_every_count() -> None:
    rng = np.random.default_rng(0)
    conf, hits = _values(200_000, rng)
    packed = conf + 1j * hits
    kernel = _bootstrap._gather_kernel()
    small = hits.astype(np.uint8)
    counts = [*range(1, 3001), *rng.integers(3001, 400_000, size=40).tolist()]
    for count in counts:
        rows = rng.integers(0, conf.shape[0], size=count)
        expected = packed[rows].sum()
        real, imag = kernel(conf, small, rows)
        assert (real, imag) == (expected.real, expected.imag), count
        assert np.float64(real).tobytes() == np.float64(expected.real).tobytes(), count


def test_replicates_are_the_same_with_numpys_gather(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(5) * 0.3, size=20_000)
    labels = np.array([rng.choice(5, p=row) for row in probs[:2000]] * 10)
    compiled = crossent.bootstrap_interval("calibration_error", probs, labels, resamples=60, seed=3)
    monkeypatch.setattr(_bootstrap._row_kernels, "available", lambda: False)
    plain = crossent.bootstrap_interval("calibration_error", probs, labels, resamples=60, seed=3)
    assert (compiled.value, compiled.low, compiled.high) == (plain.value, plain.low, plain.high)


def test_the_report_bootstrap_gathers_with_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """The calibration error's bootstrap calls the compiled gather (main has none), and
    NumPy's expression where a hit is not 0 or 1."""
    kernel, calls = _bootstrap._gather_kernel(), []

    def spy(conf: np.ndarray, hits: np.ndarray, rows: np.ndarray) -> tuple[float, float]:
        calls.append(rows.shape[0])
        return kernel(conf, hits, rows)  # type: ignore[no-any-return]

    monkeypatch.setattr(_bootstrap, "_gather_kernel", lambda: spy)
    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.ones(3), size=500)
    labels = rng.integers(0, 3, size=500)
    crossent.bootstrap_interval("calibration_error", probs, labels, resamples=20)
    assert sum(calls) == 20 * 500
    gather = _bootstrap._gatherer(np.array([0.25, 0.5]), np.array([0.0, 0.5]), draws=10**9)
    assert gather(np.array([1, 1])) == (1.0, 1.0)
