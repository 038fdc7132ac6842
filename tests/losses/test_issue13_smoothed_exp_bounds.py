"""The smoothed label gradient's own exponential and its float32 interval test.

``smoothed_gradient_kernel`` (Numba) forms every term :math:`e^{(z_j - top)/T - L}` by
``smoothed_exp`` (a degree-11 polynomial, the degree-13 Taylor series' accuracy) and finds
the blocks to correct by comparing float32 logits with ``float32_bounds`` of the float64
interval :math:`[low, high]`, which must contain it: a logit inside the interval but
outside the bounds would leave its entry uncorrected (up to 38 float32 ulps, the blocks
test's figure). Oracles: mpmath at 200 bits; exact float64 comparison.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from crossent.losses import _cpu_kernels

mpmath = pytest.importorskip("mpmath")

pytestmark = pytest.mark.skipif(not _cpu_kernels.available(), reason="Numba not installed")


def _kernels():  # type: ignore[no-untyped-def]
    from crossent.losses import _cpu_kernels_numba

    return _cpu_kernels_numba


def test_smoothed_exp_within_an_ulp_of_mpmath() -> None:
    """e^(q + lo - shift) for q in [shift - 708, 0], lo tiny, shift on the 2**-24 grid,
    and the reduction's edges (r near +-ln 2 / 2): within 1.4 units of 2**-53 (relative)
    of mpmath; exp_of_pair's Taylor series, 1.33 at most on 4000 such points, as this."""
    k = _kernels()
    rng = np.random.default_rng(13)
    shifts = np.round(rng.uniform(0.0, 20.0, 400) * 2.0**24) / 2.0**24
    qs = -(rng.uniform(0.0, 1.0, 400) ** 3) * (708.0 - shifts)  # q - shift >= -708
    edges = (np.arange(-60, 61) + 0.5) * math.log(2.0)  # r at +-ln 2 / 2
    qs = np.concatenate([qs, np.clip(edges - 700.0, -707.0, 0.0), edges[edges <= 0]])
    shifts = np.concatenate([shifts, np.zeros(qs.size - shifts.size)])
    los = rng.uniform(-1e-9, 1e-9, qs.size)
    worst = 0.0
    with mpmath.workprec(200):
        for q, lo, shift in zip(qs.tolist(), los.tolist(), shifts.tolist(), strict=True):
            got = k.smoothed_exp(q, lo, shift)
            exact = mpmath.exp(mpmath.mpf(q) + mpmath.mpf(lo) - mpmath.mpf(shift))
            worst = max(worst, float(abs(mpmath.mpf(got) / exact - 1)) / 2.0**-53)
    assert worst <= 1.4, worst


def test_smoothed_exp_coefficients_start_at_one_half() -> None:
    """u(0) = 1/2 exactly (e^r = 1 + r + r^2 u): the largest coefficient carries no
    rounding."""
    assert _kernels().SMOOTHED_EXP[0] == 0.5


@pytest.mark.parametrize("scale", [1e-40, 1e-30, 1e-3, 1.0, 17.0, 1e4, 1e30])
def test_float32_bounds_contain_the_interval(scale: float) -> None:
    """float32 l <= low and h >= high for float64 bounds of every sign and size (float32
    subnormals included), each within 2**-21 of its bound and 2**-146."""
    k = _kernels()
    rng = np.random.default_rng(int(math.log10(scale) + 50))
    lows = rng.standard_normal(2000) * scale
    highs = lows + np.abs(rng.standard_normal(2000)) * scale * 1e-4
    for low, high in zip(lows.tolist(), highs.tolist(), strict=True):
        lo32, hi32 = (float(b) for b in k.float32_bounds(low, high))
        assert lo32 <= low, (low, lo32)
        assert hi32 >= high, (high, hi32)
        assert lo32 >= low - (abs(low) * 2.0**-21 + 2.0**-146), (low, lo32)
        assert hi32 <= high + (abs(high) * 2.0**-21 + 2.0**-146), (high, hi32)
