"""Issue 13, ``crossent report`` end to end: the temperature fit's fused pass on narrow rows.

The fused pass (``_temperature_numba.row_moments``) summed every row in 256 lanes, so a
row of 10 classes cost some 2000 operations on its lanes for its 10 entries: the fit
took a third of the report of 10^6 x 10 logits.  It now takes the least power of two
at or above the classes (at most 256), which gives the same bits: these tests compare
the two, row by row and bit for bit, on hard rows (ties, signed zeros, -inf, NaN,
weights in the subnormals, spreads past 1e300), and check that narrow rows are given
narrow lanes (which fails on main, where every call had 256).

Rows of at most 32 classes now take the narrow pass (``narrow_rows``,
``narrow_chunk``: 64 rows side by side, the loops across the rows), so the comparison
with 256 lanes is also one of the two passes; ``test_narrow_pass_agrees_with_mpmath``
checks it against mpmath on 150 rows gathered out of order (three chunks, the last
partial) with huge margins, ties, ``-inf`` and subnormal weights, and bit for bit
against the 256 lanes' pass.  It passes on main (the row pass); it fails for a chunk
that reads its first rows again (10 of the file's 39 tests fail, 9 of them these) and
for a chunk whose spread forgets the mask of weights 0 (20 of 39; 6 of these).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from crossent._read_only import read_only
from crossent.calibration import _row_kernels, _temperature
from crossent.calibration._inputs import as_predictions

pytestmark = pytest.mark.skipif(not _row_kernels.available(), reason="needs Numba")


def _hard_rows(classes: int, dtype: Any, rng: np.random.Generator) -> np.ndarray:
    """Rows of ``classes`` entries: random ones and the edge cases of the kernel."""
    rows = [rng.normal(size=classes) * scale for scale in (0.1, 3.0, 40.0, 1e3)]
    rows.append(np.zeros(classes))  # all tied
    signed = np.zeros(classes)
    signed[::2] = -0.0  # +0 and -0 tied at the maximum
    rows.append(signed)
    rows.append(np.where(np.arange(classes) % 3 == 1, -np.inf, rng.normal(size=classes)))
    huge = rng.normal(size=classes)
    huge[-1] = -1e300 if dtype == np.float64 else -3e38  # a weight of 0, s finite
    rows.append(huge)
    sub = rng.normal(size=classes)
    sub[0] = -740.0  # a weight in the subnormals at beta = 1
    rows.append(sub)
    nan = rng.normal(size=classes)
    nan[classes // 2] = np.nan
    rows.append(nan)
    big = rng.normal(size=classes) + 1e30 if dtype == np.float64 else rng.normal(size=classes)
    rows.append(big)
    return np.ascontiguousarray(np.array(rows), dtype=dtype)


def _moments(values: np.ndarray, labels: np.ndarray, beta: float, width: int) -> np.ndarray:
    out = np.empty((4, values.shape[0]))
    lanes, weights = np.empty((5, width)), np.empty(values.shape[1])
    rows = np.arange(values.shape[0], dtype=np.intp)
    # values and labels read-only, as _temperature._fused_parts hands them
    kernel = _temperature._kernels().row_moments
    kernel(read_only(values), rows, read_only(labels), beta, lanes, weights, out)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("classes", [1, 2, 3, 5, 8, 10, 16, 17, 100, 128, 129, 255, 256, 257])
def test_narrow_lanes_give_the_bits_of_256_lanes(classes: int, dtype: Any) -> None:
    rng = np.random.default_rng(classes)
    values = _hard_rows(classes, dtype, rng)
    labels = rng.integers(0, classes, size=values.shape[0]).astype(np.intp)
    width = _temperature._lane_count(classes)
    assert width == min(256, 1 << (classes - 1).bit_length())
    for beta in (1.0, 0.05, 0.7, 3.0, 1e-300, 1e300):
        with np.errstate(all="ignore"):
            narrow = _moments(values, labels, beta, width)
            wide = _moments(values, labels, beta, 256)
        assert narrow.tobytes() == wide.tobytes(), (classes, beta)


def test_narrow_rows_are_given_narrow_lanes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fit on 10 classes passes 16 lanes to the kernel (256 on main)."""
    kernel = _temperature._kernels().row_moments
    widths = set()

    def spy(values: Any, rows: Any, labels: Any, beta: float, lanes: Any, *rest: Any) -> None:
        widths.add(lanes.shape[1])
        kernel(values, rows, labels, beta, lanes, *rest)

    monkeypatch.setattr(_temperature, "_fused_kernel", lambda predictions: spy)
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(500, 10)).astype(np.float32) * 3
    labels = rng.integers(0, 10, size=500)
    predictions = as_predictions(logits, labels, form="logits")
    _temperature._fit_beta(predictions, (0.05, 20.0), 1e-8)
    assert widths == {16}


def test_the_fit_is_the_same_with_256_lanes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fitted temperature, NLLs and slope: the same bits as with 256 lanes."""
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(3000, 10)) * 3
    labels = np.argmax(logits / 1.3 + rng.gumbel(size=logits.shape), axis=1)
    predictions = as_predictions(logits, labels, form="logits")
    narrow = _temperature._fit_beta(predictions, (0.05, 20.0), 1e-10)
    monkeypatch.setattr(_temperature, "_lane_count", lambda classes: 256)
    wide = _temperature._fit_beta(predictions, (0.05, 20.0), 1e-10)
    assert narrow == wide


def _oracle_rows(values: np.ndarray, labels: np.ndarray, beta: float) -> np.ndarray:
    """S - 1, E, V, s_y of each row by mpmath at 40 digits from the stored values (a weight
    below e^-800, which rounds to 0, taken as 0; -inf entries weigh 0)."""
    mpmath = pytest.importorskip("mpmath")
    out = np.empty((4, values.shape[0]))
    with mpmath.workdps(40):
        for i, row in enumerate(values.astype(np.float64)):
            m = row.max()
            shifts = [mpmath.mpf(float(v)) - mpmath.mpf(float(m)) for v in row if v > -np.inf]
            weights = [mpmath.exp(beta * s) if beta * s > -800 else mpmath.mpf(0) for s in shifts]
            # S - 1 as (ties - 1) + the other weights: 1 + e^-500 - 1 is 0 at 40 digits
            excess = mpmath.fsum(w for w, s in zip(weights, shifts, strict=True) if s != 0)
            excess += sum(s == 0 for s in shifts) - 1
            pairs = list(zip(weights, shifts, strict=True))
            mean = mpmath.fsum(w * s for w, s in pairs) / (1 + excess)
            spread = mpmath.fsum(w * (s - mean) ** 2 for w, s in pairs) / (1 + excess)
            out[:3, i] = [float(excess), float(mean), float(spread)]
    stored = values.astype(np.float64)
    out[3] = stored[np.arange(values.shape[0]), labels] - stored.max(axis=1)
    return out


def _oracle_case(classes: int, source: Any, rng: np.random.Generator) -> np.ndarray:
    """150 rows (three of the narrow pass's chunks of 64, the last partial) of ``classes``
    entries: random scales, huge margins, ties, -inf, weights in the subnormals, and
    values of ``source``'s precision (float16 values stored as float32)."""
    rows = [rng.normal(size=classes) * scale for scale in (0.01, 1.0, 5.0, 30.0)]
    margin = rng.normal(size=classes)
    margin[classes // 2] += 1e4  # a huge margin: every other weight 0
    rows.append(margin)
    rows.append(rng.integers(-1, 2, size=classes).astype(np.float64))  # ties
    if classes > 2:
        rows.append(np.where(np.arange(classes) % 3 == 2, -np.inf, rng.normal(size=classes)))
    sub = rng.normal(size=classes)
    sub[:: max(classes // 3, 1)] -= 730.0  # weights in the subnormals at beta = 1
    rows.append(sub)
    picks = rng.integers(0, len(rows), size=150)
    picks[:4] = [4, 5, 6 % len(rows), len(rows) - 1]
    values = np.array([rows[p] for p in picks]) + rng.normal(size=(150, classes)) * (
        picks[:, None] < 4
    )
    return np.ascontiguousarray(values.astype(source).astype(np.result_type(source, np.float32)))


@pytest.mark.parametrize("source", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("classes", [2, 10, 32])
def test_narrow_pass_agrees_with_mpmath(classes: int, source: Any) -> None:
    """The narrow pass (rows side by side, rows of at most 32 classes), rows gathered out of
    order across three chunks, against mpmath; and bit for bit the 256 lanes' pass."""
    rng = np.random.default_rng(classes)
    values = _oracle_case(classes, source, rng)
    labels = rng.integers(0, classes, size=values.shape[0]).astype(np.intp)
    picked = (np.arange(values.shape[0]), labels)
    values[picked] = np.where(np.isinf(values[picked]), 0.0, values[picked])  # (refused: -inf)
    order = rng.permutation(values.shape[0]).astype(np.intp)
    width = _temperature._lane_count(classes)
    kernel = _temperature._kernels().row_moments
    for beta in (0.05, 1.0, 20.0):
        narrow, wide = np.empty((4, 150)), np.empty((4, 150))
        for out, lanes in ((narrow, width), (wide, 256)):
            scratch = np.empty((5, lanes)), np.empty(classes)
            kernel(read_only(values), order, read_only(labels[order]), beta, *scratch, out)
        assert narrow.tobytes() == wide.tobytes(), beta
        exact = _oracle_rows(values[order], labels[order], beta)
        np.testing.assert_array_equal(narrow[3], exact[3])  # s_y: one subtraction
        # relative rounding; an absolute subnormal's worth where weights are subnormal
        np.testing.assert_allclose(narrow[:3], exact[:3], rtol=1e-13, atol=1e-300)
