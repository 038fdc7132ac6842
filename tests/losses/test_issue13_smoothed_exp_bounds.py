"""The smoothed label gradient's own exponential and its float32 interval test.

``smoothed_gradient_kernel`` (Numba) forms every term :math:`e^{(z_j - top)/T - L}` by
``exp_of_pair`` (``EXP_POLY``'s degree-11 polynomial, the degree-13 Taylor series'
accuracy; since branch smoothperf the one exponential of the exact kernels, the soft
targets' ``target_exp`` and the distillation kernels too) and finds
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


def test_exp_of_pair_within_an_ulp_of_mpmath() -> None:
    """e^(q + lo - shift) for q in [shift - 708, 0], lo tiny, shift on the 2**-24 grid,
    and the reduction's edges (r near +-ln 2 / 2): within 1.4 units of 2**-53 (relative)
    of mpmath; the degree-13 Taylor series exp_of_pair had before, 1.33 at most on 4000
    such points, as this."""
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
            got = k.exp_of_pair(q, lo, shift)
            exact = mpmath.exp(mpmath.mpf(q) + mpmath.mpf(lo) - mpmath.mpf(shift))
            worst = max(worst, float(abs(mpmath.mpf(got) / exact - 1)) / 2.0**-53)
    assert worst <= 1.4, worst


def test_exp_coefficients_start_at_one_half() -> None:
    """u(0) = 1/2 exactly (e^r = 1 + r + r^2 u): the largest coefficient carries no
    rounding."""
    assert _kernels().EXP_POLY[0] == 0.5


@pytest.mark.parametrize("temperature", [1.0, 1.7])
def test_smoothed_and_target_gradients_share_one_exponential(temperature: float) -> None:
    """The smoothed label gradient's term (``smoothed_term``) and the soft targets'
    (``target_exp``) are one function: the same bits on 3000 float32 logits over the
    unclamped range, tops and shifts on the 2**-24 grid (on main each kernel had its own
    polynomial, and 46-56 of the 3000 terms differed in their last bit)."""
    k = _kernels()
    rng = np.random.default_rng(17)
    xs = np.concatenate(
        [-rng.uniform(0, 2, 1000), -rng.uniform(0, 60, 1000), -rng.uniform(0, 600, 1000)]
    ).astype(np.float32)
    tops = np.float32(rng.uniform(-30.0, 30.0, xs.size)).astype(np.float64)
    shifts = np.round(rng.uniform(0.0, 12.0, xs.size) * 2.0**24) / 2.0**24
    unit = temperature == 1.0
    differ = 0
    for x, top, shift in zip(xs, tops.tolist(), shifts.tolist(), strict=True):
        x = np.float32(x + np.float32(top))  # x - top as drawn, to float32's rounding
        floor = shift - 708.0
        want = k.target_exp(x, top, 1 / temperature, temperature, floor, shift)
        got = k.smoothed_term(x, top, 1 / temperature, temperature, (shift, 0.0), unit)
        differ += got != want
    assert differ == 0, differ


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
