"""Issue 13, evaluation item: the entropy terms of float32 entries have the bits of the
same entries' terms in float64 (``log_positive``'s path, subnormal scaling included).

``_row_kernels_numba.entropy_terms`` computes :math:`p \\log p` of each entry with
fdlibm's logarithm (``log_positive``), which scales float64 subnormals by :math:`2^{54}`
before splitting :math:`x = 2^k m`.  A positive float32 widened to float64 is never
subnormal (:math:`2^{-149} > 2^{-1022}`), so the scaling is dead for float32 entries:
LLVM folds it away in the float32 loop (its compare of a widened float32 against the
smallest normal float64 is never true), and any float32-only logarithm (as tried in
``benchmarks/bench_entropy_log.py``) must keep the bits.  Pinned here: the float32
terms equal, bit for bit, those of the same values widened to float64, on every float32
mantissa of the exponents where a float32-only split could part (the float32
subnormals and zero, the smallest normals, [1/2, 1), which holds fdlibm's cut
:math:`T/2`, and [1, 2)) and on random values in (0, 1].  Checked against a mutant:
a float32-only logarithm (``log_positive`` without the scaling, chosen by the entry's
type) compiled without ``contract`` fails every case; it passes on main, which has no
float32-only path (a pin, not a fix).
"""

from __future__ import annotations

import numpy as np
import pytest

from crossent.calibration import _row_kernels

pytestmark = pytest.mark.skipif(not _row_kernels.available(), reason="needs Numba")


def _every_mantissa(biased_exponent: int) -> np.ndarray:
    """Every float32 with this exponent field (0: the subnormals and zero)."""
    mantissas = np.arange(1 << 23, dtype=np.uint32)
    return (mantissas | np.uint32(biased_exponent << 23)).view(np.float32)


def _terms(flat: np.ndarray) -> np.ndarray:
    from crossent.calibration._row_kernels_numba import entropy_terms

    out = np.empty(flat.size)
    entropy_terms(flat, 0, flat.size, out)
    return out


def _same_bits(flat: np.ndarray) -> bool:
    float32_terms = _terms(flat)
    float64_terms = _terms(flat.astype(np.float64))
    return bool(np.array_equal(float32_terms.view(np.int64), float64_terms.view(np.int64)))


@pytest.mark.parametrize("biased_exponent", [0, 1, 126, 127])
def test_float32_terms_have_the_bits_of_the_float64_terms(biased_exponent: int) -> None:
    assert _same_bits(_every_mantissa(biased_exponent))


def test_float32_terms_of_random_probabilities() -> None:
    rng = np.random.default_rng(13)
    tail = np.array([0, 1, 2**-149], np.float32)
    assert _same_bits(np.concatenate([1 - rng.random(1_000_000, dtype=np.float32), tail]))
