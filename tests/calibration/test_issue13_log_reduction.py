"""Issue 13, evaluation item: the kernels' logarithm splits x = 2^k m in fewer operations,
with the same bits.

``_row_kernels_numba.log_positive`` (fdlibm's logarithm, the entropy terms' cost) used to
take m from the mantissa and halve it when it reached fdlibm's cut
:math:`T = 1 + \\mathrm{0x6A09C}\\,2^{-20}` (just below :math:`\\sqrt 2`), in 11 integer
operations a vector.  It now adds :math:`1 - T/2` to the bits, so that the mantissa
carries into the exponent field exactly when m would reach T (7 operations).  The m and
k, hence every later rounding, must be the same: these tests pin the logarithm bit for bit
to the previous split (written out below as the oracle, compiled with the kernel's
flags, followed by the kernel's own ``log_reduced``: only the split differs) on the
values where the two could part: around the cut T (and exactly sqrt(2), above it) at
many exponents, powers of two and their neighbours, next to 1, float64 subnormals
(scaled by 2^54 first), the largest float64, every float32 mantissa of [1, 2), and
random values of every exponent.  A second test holds the result within 1 ulp of
mpmath's logarithm on the cut's neighbours (the bit pin alone would accept a shared
error).  Checked against mutants: the exact sqrt(1/2) as the offset (m's cut moves up
to sqrt(2)) fails the pin; T/2's bits off in one place (0x3FE6A09D...) fails all three.
"""

from __future__ import annotations

import functools
import math

import mpmath
import numpy as np
import pytest

from crossent.calibration import _row_kernels

pytestmark = pytest.mark.skipif(not _row_kernels.available(), reason="needs Numba")

_CUT = 1.0 + 0x6A09C * 2.0**-20  # fdlibm's cut: m in [_CUT / 2, _CUT)


@functools.cache
def _previous_log() -> object:
    """The logarithm with the previous split of x into 2^k m (the rest unchanged)."""
    import numba

    from crossent._intrinsics_numba import bits_to_float64, float64_to_bits
    from crossent.calibration._row_kernels_numba import log_reduced

    @numba.njit(fastmath={"contract", "nsz"}, error_model="numpy")
    def log_positive(x: float) -> float:
        tiny = x < 2.2250738585072014e-308
        x = x * 18014398509481984.0 if tiny else x
        bits = float64_to_bits(x)
        mantissa = bits & 0x000FFFFFFFFFFFFF
        upper = (mantissa + 0x95F6400000000) >> 52
        m = bits_to_float64(mantissa | ((1023 - upper) << 52))
        biased = ((bits >> 52) & 0x7FF) + upper
        k = bits_to_float64(biased | 0x4330000000000000) - (4503599627370496.0 + 1023.0)
        k = k - 54.0 if tiny else k
        return log_reduced(m - 1.0, k)  # the kernels' polynomial: only the split differs

    @numba.njit(fastmath={"contract", "reassoc", "nsz", "arcp"})
    def log_array(x: np.ndarray, out: np.ndarray) -> None:
        for i in range(x.shape[0]):
            out[i] = log_positive(x[i])

    return log_array


def _around(values: np.ndarray, steps: int) -> np.ndarray:
    """``values`` and their ``steps`` neighbours on each side (in float64 ulps)."""
    out = [values]
    up, down = values.copy(), values.copy()
    for _ in range(steps):
        up, down = np.nextafter(up, np.inf), np.nextafter(down, 0.0)
        out += [up, down]
    return np.concatenate(out)


def _cut_values() -> np.ndarray:
    """The cut T, T/2 and sqrt(2) at exponents across the range, with neighbours."""
    exponents = np.array([-1074 + 60, -1022, -600, -126, -60, -24, -2, -1, 0, 1, 2, 127, 1022])
    centres = np.concatenate(
        [np.ldexp(v, exponents) for v in (_CUT, _CUT / 2, math.sqrt(2.0), math.sqrt(0.5))]
    )
    return _around(centres[np.isfinite(centres) & (centres > 0)], 8)


def _hard_values() -> np.ndarray:
    rng = np.random.default_rng(1313)
    powers = np.ldexp(1.0, np.arange(-1074, 1024))
    mantissas = np.arange(1 << 23, dtype=np.uint32) | np.uint32(0x3F800000)
    subnormal = np.concatenate(
        [
            np.arange(1, 2000) * 5e-324,
            np.nextafter(2.2250738585072014e-308, 0.0) - np.arange(50) * 5e-324,
        ]
    )
    any_exponent = np.ldexp(1.0 + rng.random(200_000), rng.integers(-1074, 1024, 200_000))
    # m from T/2 to T in 2^16 steps (the whole reduced range, across the cut)
    reduced = np.linspace(_CUT / 2, _CUT, 1 << 16)
    values = np.concatenate(
        [
            _cut_values(),
            _around(powers, 2),
            _around(np.array([1.0]), 300),
            subnormal,
            np.array([1.7976931348623157e308, 2.2250738585072014e-308]),
            mantissas.view(np.float32).astype(np.float64),
            any_exponent[any_exponent > 0],
            np.concatenate([reduced, reduced * 2.0**-3, reduced * 2.0**5]),
        ]
    )
    return values[values > 0]  # (the neighbours below 2^-1074 are 0)


def test_issue13_log_reduction_same_bits_as_the_previous_split() -> None:
    x = _hard_values()
    assert np.all(np.isfinite(x))
    assert np.all(x > 0)
    expected = np.empty_like(x)
    _previous_log()(x, expected)
    got = _row_kernels.log_positive(x)
    differ = np.flatnonzero(got.view(np.int64) != expected.view(np.int64))
    assert differ.size == 0, (differ.size, x[differ[:5]], got[differ[:5]], expected[differ[:5]])


def test_issue13_log_reduction_within_one_ulp_of_mpmath_at_the_cut() -> None:
    x = _cut_values()
    got = _row_kernels.log_positive(x)
    with mpmath.workdps(40):
        exact = [mpmath.log(mpmath.mpf(float(v))) for v in x]
        error = np.array(
            [float(abs(mpmath.mpf(float(g)) - e)) for g, e in zip(got, exact, strict=True)]
        )
    ulp = np.spacing(np.abs(np.array([float(e) for e in exact])))
    assert np.all(error <= ulp), float(np.max(error / ulp))


def test_issue13_log_reduction_exact_at_one_and_powers_of_two() -> None:
    k = np.arange(-1074, 1024)
    got = _row_kernels.log_positive(np.ldexp(1.0, k))
    assert got[1074] == 0.0
    assert not np.signbit(got[1074])
    with mpmath.workdps(40):
        ln2 = mpmath.log(2)
        error = np.array(
            [float(abs(mpmath.mpf(float(g)) - int(e) * ln2)) for g, e in zip(got, k, strict=True)]
        )
    ulp = np.spacing(np.abs(k * math.log(2.0)))
    assert np.all(error[k != 0] <= ulp[k != 0])
