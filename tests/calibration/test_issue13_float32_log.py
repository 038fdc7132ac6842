"""Issue 13, evaluation item: the entropy terms of float32 entries take the kernels'
logarithm without its subnormal scaling, with the same bits.

``_row_kernels_numba.entropy_terms`` computes :math:`p \\log p` of each entry, the
logarithm fdlibm's (``log_positive``), which scales float64 subnormals by
:math:`2^{54}` before splitting :math:`x = 2^k m`.  A positive float32 widened to
float64 is never subnormal (:math:`2^{-149} > 2^{-1022}`), so float32 entries take
``log_normal`` (no scaling; chosen by the entry's type, ``log_of_entry``), and the split
takes the exponent with an int64 conversion where the target has AVX-512DQ
(``split_exponent``).  Pinned here: the float32 terms equal, bit for bit, the terms of the
same values widened to float64 (``log_positive``'s path), on every float32 mantissa of
the exponents where the split could part (float32 subnormals, the smallest normals,
[1/2, 1), which holds fdlibm's cut T/2, and [1, 2)) and on random values in
(0, 1]; and ``split_exponent`` equals fdlibm's split computed exactly by ``np.frexp``.
Checked against mutants: ``log_normal`` compiled without ``contract`` (its
polynomial's products then rounded apart) fails the five terms tests; the converted
exponent a logical shift (``(d >> 52) & 0xFFF``: k wrong below T/2) fails the split
test (and, shared by both paths, not the terms tests; the old code has no
``split_exponent``).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from crossent.calibration import _row_kernels

pytestmark = pytest.mark.skipif(not _row_kernels.available(), reason="needs Numba")

_CUT = 1.0 + 0x6A09C * 2.0**-20  # fdlibm's cut: m in [_CUT / 2, _CUT)


def _every_mantissa(biased_exponent: int) -> np.ndarray:
    """Every float32 with this exponent field (0: the subnormals and zero)."""
    mantissas = np.arange(1 << 23, dtype=np.uint32)
    return (mantissas | np.uint32(biased_exponent << 23)).view(np.float32)


def _terms(flat: np.ndarray) -> np.ndarray:
    from crossent.calibration._row_kernels_numba import entropy_terms

    out = np.empty(flat.size)
    entropy_terms(flat, 0, flat.size, out)
    return out


@pytest.mark.parametrize("biased_exponent", [0, 1, 126, 127])
def test_float32_terms_have_the_bits_of_the_float64_terms(biased_exponent: int) -> None:
    flat = _every_mantissa(biased_exponent)
    assert np.array_equal(
        _terms(flat).view(np.int64), _terms(flat.astype(np.float64)).view(np.int64)
    )


def test_float32_terms_of_random_probabilities() -> None:
    rng = np.random.default_rng(13)
    flat = np.concatenate(
        [1 - rng.random(1_000_000, dtype=np.float32), np.array([0, 1, 2**-149], np.float32)]
    )
    assert np.array_equal(
        _terms(flat).view(np.int64), _terms(flat.astype(np.float64)).view(np.int64)
    )


@functools.cache
def _split_array() -> object:
    import numba

    from crossent.calibration._row_kernels_numba import split_exponent

    @numba.njit
    def split_array(x: np.ndarray, m: np.ndarray, k: np.ndarray) -> None:
        for i in range(x.shape[0]):
            m[i], k[i] = split_exponent(x[i])

    return split_array


def test_split_exponent_is_fdlibms() -> None:
    rng = np.random.default_rng(7)
    x = np.concatenate(
        [
            _every_mantissa(1).astype(np.float64)[::7],
            _every_mantissa(126).astype(np.float64)[::7],
            np.ldexp(1 + rng.random(100_000), rng.integers(-1022, 1024, 100_000)),
            np.array([np.finfo(np.float64).tiny, np.finfo(np.float64).max, _CUT / 2, _CUT]),
        ]
    )
    m, k = np.empty_like(x), np.empty_like(x)
    _split_array()(x, m, k)
    fraction, exponent = np.frexp(x)  # x = fraction 2^exponent, fraction in [1/2, 1)
    low = fraction < _CUT / 2  # fdlibm doubles these: m in [T/2, T)
    assert np.array_equal(m, np.where(low, 2 * fraction, fraction))
    assert np.array_equal(k, exponent - low)
