"""Issue 13, default install: the NumPy forward's :math:`\\delta` by Fast2Sum.

``_numpy_kernels._shifted_error`` gives :math:`\\delta = (x - t) - \\mathrm{fl}_{32}(x - t)`
in two float32 passes (and a ``min``) where TwoSum takes five, when a block's rows allow
it (every maximum :math:`\\le 0`, or every maximum :math:`t \\in [2^{k-1}, 2^k)` positive
with every :math:`x > -2^k`), else TwoSum. These tests hold it to the exact error (an
exact rational oracle) on blocks of each kind, with entries where the wrong formula errs,
and ``_exp_sum32``'s sums to TwoSum's bits: the speed-up changes no bit of the forward.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from crossent.losses import _numpy_kernels

F32 = np.float32


def _block(rows: list[tuple[float, list[float]]]) -> np.ndarray:
    """float32 rows: each a maximum ``t`` (placed first) and entries below it."""
    width = max(len(entries) for _, entries in rows) + 1
    out = np.empty((len(rows), width), dtype=F32)
    for i, (top, entries) in enumerate(rows):
        padded = (entries * width)[: width - 1]
        out[i] = [top, *padded]
        assert out[i].max() == F32(top)
    return out


def _spread(top: float, low: float, count: int, seed: int) -> list[float]:
    """``count`` float32 values in ``[low, top]``, most of them inexact below ``top``."""
    values = np.random.default_rng(seed).uniform(low, top, count).astype(F32)
    return [float(v) for v in values]


#: Blocks that take Fast2Sum with a = -t (positive maxima, every x > -2^k); the entries
#: 0.34662238, 0.26237127, 0.05064899 and 1.6672311 are ones where the formula of the
#: other kind (a = x) errs.
POSITIVE = _block(
    [
        (0.99999994, [0.34662238, 0.26237127, -0.99999994, *_spread(0.99, -0.99, 60, 1)]),
        (0.75000006, [0.05064899, 0.12460724, -0.75, -1e-40, 0.0, -0.0]),
        (12.3, [1.6672311, 1.1898965, -15.999999, *_spread(12.3, -15.9, 60, 2)]),
        (1.0 + 2.0**-23, [0.75 + 3 * 2.0**-24, 0.75 - 3 * 2.0**-24, -1.25 - 2.0**-22]),
    ]
)
#: Blocks with every maximum <= 0: a = x.
NON_POSITIVE = _block(
    [
        (-1.0 - 2.0**-23, [-3.25 - 3 * 2.0**-22, *_spread(-1.0, -40.0, 60, 3)]),
        (0.0, [-1e-40, -1.0, -3.0e38, *_spread(0.0, -5.0, 60, 4)]),
        (-96.0 + 2.0**-18, [-100.0 - 2.0**-17, *_spread(-96.0, -300.0, 60, 5)]),
        (-1e-44, [-1e-40, -3e-39, -1.5]),
    ]
)
#: TwoSum blocks: an x <= -2^k under a positive maximum (-16.0095 in (-32, -16],
#: -11.103745 and -6.0445457, -75.44983: entries where a = -t errs), and a block with both
#: signs of maxima and an x <= -2^k (a = x errs in its positive row, a = -t in the other).
BEYOND = _block([(12.3, [-16.0095, 1.6672311, -15.5]), (0.5, [-0.75, 0.25])])
FAR = _block([(1.0 + 2.0**-23, [-11.103745, -6.0445457, 0.5]), (12.3, [-75.44983, 1.5])])
#: x = -2^k exactly (outside the theorem's condition): TwoSum.
EDGE = _block([(12.3, [-16.0, 1.6672311, 1.1898965, -15.999999])])
#: Both signs of maxima, every x > -2^k: a = -t (exact in the negative rows too).
BOTH = _block(
    [
        (0.99999994, [0.34662238, 0.26237127, -0.5]),
        (-1.0 - 2.0**-23, [-1.9999999, -1.5 - 2.0**-22, *_spread(-1.0, -1.99, 30, 6)]),
        (0.0, [-0.75, -1e-40, -0.0]),
    ]
)
MIXED = _block(
    [
        (0.99999994, [0.34662238, 0.26237127]),
        (-1.0 - 2.0**-23, [-11.103745, -6.0445457, -3.25 - 3 * 2.0**-22]),
    ]
)
BLOCKS = {
    "positive": POSITIVE,
    "non-positive": NON_POSITIVE,
    "both signs": BOTH,
    "beyond": BEYOND,
    "far": FAR,
    "edge": EDGE,
    "mixed": MIXED,
}
FAST = {"positive": True, "non-positive": True, "both signs": True}


def _exact_delta(x: np.ndarray, top: np.ndarray, h: np.ndarray) -> np.ndarray:
    """(x - t) - h in exact rationals, then float32 (it must be one: asserted)."""
    out = np.empty(x.shape, dtype=F32)
    for index in np.ndindex(x.shape):
        exact = Fraction(float(x[index])) - Fraction(float(top[index[0], 0]))
        error = exact - Fraction(float(h[index]))
        out[index] = float(error)
        assert Fraction(float(out[index])) == error, index
    return out


def _delta(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    top = x.max(axis=1, keepdims=True)
    h = x - top
    rounded = h.copy()
    _numpy_kernels._shifted_error(x, top, h, np.empty_like(x))
    return top, rounded, h


@pytest.mark.parametrize("name", list(BLOCKS))
def test_issue13_shifted_error_is_the_exact_error(name: str) -> None:
    x = BLOCKS[name]
    top, rounded, delta = _delta(x)
    expected = _exact_delta(x, top, rounded)
    assert (expected != 0).sum() >= 3  # the blocks test something
    np.testing.assert_array_equal(delta, expected)


@pytest.mark.parametrize("name", list(BLOCKS))
def test_issue13_shifted_error_takes_two_passes_where_it_may(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fast2Sum on the blocks that allow it (the speed-up), TwoSum on the others."""
    calls: list[int] = []
    twosum = _numpy_kernels._difference_error

    def spy(*args: np.ndarray) -> None:
        calls.append(1)
        twosum(*args)

    monkeypatch.setattr(_numpy_kernels, "_difference_error", spy)
    x = BLOCKS[name]
    out = np.empty(len(x))
    top = x.max(axis=1, keepdims=True)
    _numpy_kernels._exp_sum32(x, top, *(np.empty_like(x) for _ in range(3)), out=out)
    assert bool(calls) is not FAST.get(name, False)


def _nonfinite_block(kind: str) -> np.ndarray:
    """Rows whose sums are NaN with TwoSum, and a finite one last. "overflow": an x - t
    beyond float32's range, and "inf": a +inf maximum, both under the a = -t formula's
    bound (it is taken); "nonfinite": a -inf, a NaN, a row of -inf (TwoSum)."""
    x = np.tile(POSITIVE[:1], (4, 1))
    if kind == "overflow":
        x[0, 0], x[0, 3] = 3e38, -3e38
        x[1, 0], x[1, 1:] = 3e38, -3e38
    elif kind == "inf":
        x[0, 4] = np.inf
        x[1, 1:] = np.inf
    else:
        x[0, 5] = -np.inf
        x[1, 2] = np.nan
        x[2] = -np.inf
    return x


@pytest.mark.parametrize("name", [*BLOCKS, "overflow", "inf", "nonfinite", "random", "wide"])
def test_issue13_exp_sum32_keeps_twosum_bits(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``_exp_sum32``'s sums with Fast2Sum's delta: TwoSum's, bit for bit."""
    rng = np.random.default_rng(13)
    if name in ("overflow", "inf", "nonfinite"):
        x = _nonfinite_block(name)
    elif name == "random":
        x = (rng.standard_normal((4, 3000)) * 3).astype(F32)
    elif name == "wide":
        x = (rng.standard_normal((4, 3000)) * 30).astype(F32)
    else:
        x = BLOCKS[name]
    top = x.max(axis=1, keepdims=True)

    def sums() -> np.ndarray:
        out = np.empty(len(x))
        with np.errstate(all="ignore"):
            _numpy_kernels._exp_sum32(x, top, *(np.empty_like(x) for _ in range(3)), out=out)
        return out

    fast = sums()
    twosum = _numpy_kernels._difference_error
    monkeypatch.setattr(_numpy_kernels, "_shifted_error", lambda x, t, h, a: twosum(x, t, h, a, h))
    reference = sums()
    np.testing.assert_array_equal(fast.view(np.uint64), reference.view(np.uint64))
    if name in ("overflow", "inf", "nonfinite"):
        assert np.isnan(fast[:2]).all()
        assert np.isfinite(fast[-1])
