"""Issue 13, evaluation item: the entropy's logarithm, vectorised and exact.

``EvaluationState.update`` spends most of its time on the entropy terms
:math:`p \\log p` (10^6 x 10 float32: 10^7 logarithms).  The kernels' logarithm
(``_row_kernels_numba.log_positive``) is fdlibm's ``__ieee754_log`` written as
branch-free, table-free arithmetic that LLVM vectorises (AVX2: four doubles per
instruction); its polynomial :math:`R(z)` is evaluated by Estrin's scheme and the
entropy loop keeps four logarithms in flight (the loop is bound by the logarithm's
latency).  Estrin's order rounds differently from fdlibm's two Horner halves: the
logarithm's last bit differs from main's on about 0.3% of the values, and the error
stays below 1 ulp (measured max 0.86 ulp against an 80-bit reference on 6 million
values).  These tests pin:

* the logarithm within 1 ulp of mpmath (40 digits) on hard float32 values spanning
  (0, 1] and a little above (every exponent, the neighbours of every power of two,
  next to 1, the smallest normal float32, 1 - 2^-24, the reduction's boundary at
  sqrt(2)), and of ``np.longdouble`` on a million random float32 values;
* the entropies of hard rows (near one-hot, uniform, many zeros, row lengths whose
  entry count is not a multiple of the four streams) no farther from mpmath's than
  the C library's logarithm summed in the same order puts them, plus one ulp;
* the entropy loop compiled to 256-bit vector divisions (ymm) where the CPU has AVX2,
  512-bit ones (zmm) where it has AVX-512.
"""

from __future__ import annotations

import functools
import math
import platform
import re

import mpmath
import numpy as np
import pytest

from crossent.calibration import _row_kernels

from numba_target import numba_target_has

pytestmark = pytest.mark.skipif(not _row_kernels.available(), reason="needs Numba")

_F32 = np.float32


def _float32_hard_values() -> np.ndarray:
    """Float32 values (as float64) where a logarithm goes wrong first."""
    powers = np.ldexp(1.0, np.arange(-126, 1)).astype(_F32)  # every normal exponent
    below = np.nextafter(powers, _F32(0))
    above = np.nextafter(powers, _F32(2))
    near_one = np.concatenate(
        [1.0 - np.arange(1, 257) * 2.0**-24, 1.0 + np.arange(1, 257) * 2.0**-23]
    ).astype(_F32)
    root = _F32(math.sqrt(2.0))
    boundary = np.array(
        [np.nextafter(root, _F32(0)), root, np.nextafter(root, _F32(2))], dtype=_F32
    )
    boundary = np.concatenate([boundary, boundary / _F32(2), boundary * _F32(2.0**-60)])
    tiny = np.finfo(_F32).tiny
    special = np.array(
        [tiny, np.nextafter(tiny, _F32(1)), 1 - 2.0**-24, 1.0, 1 + 2.0**-23, 1.001, 0.1],
        dtype=_F32,
    )
    rng = np.random.default_rng(1313)
    spread = np.ldexp(1.0 + rng.random(2000), rng.integers(-126, 1, 2000)).astype(_F32)
    values = np.concatenate([powers, below, above, near_one, boundary, special, spread])
    return values[values > 0].astype(np.float64)


@functools.cache
def _exact_log(x: float) -> mpmath.mpf:
    with mpmath.workdps(40):
        return mpmath.log(mpmath.mpf(x))


def test_issue13_vector_log_within_one_ulp_of_mpmath_on_hard_float32_values() -> None:
    x = _float32_hard_values()
    got = _row_kernels.log_positive(x)
    exact = np.array([float(_exact_log(float(v))) for v in x])
    with mpmath.workdps(40):
        error = np.array(
            [
                float(abs(mpmath.mpf(float(g)) - _exact_log(float(v))))
                for g, v in zip(got, x, strict=True)
            ]
        )
    bound = np.spacing(np.abs(exact))  # 1 ulp of the exact value
    worst = int(np.argmax(error / np.where(exact == 0, 1.0, bound)))
    assert np.all(got[x == 1.0] == 0.0)  # log 1 = 0 exactly
    assert np.all(error[exact != 0] <= bound[exact != 0]), (x[worst], got[worst], exact[worst])


def test_issue13_vector_log_within_one_ulp_of_longdouble_on_random_float32() -> None:
    if np.finfo(np.longdouble).nmant < 63:
        pytest.skip("np.longdouble is not the 80-bit extended format here")
    rng = np.random.default_rng(13)
    uniform = rng.random(500_000).astype(_F32)
    spread = np.ldexp(1.0 + rng.random(500_000), rng.integers(-126, 1, 500_000)).astype(_F32)
    x = np.concatenate([uniform, spread]).astype(np.float64)
    x = x[x > 0]
    got = _row_kernels.log_positive(x)
    reference = np.log(x.astype(np.longdouble))  # 11 more bits than float64
    ulp = np.spacing(np.abs(reference.astype(np.float64))).astype(np.longdouble)
    error = np.abs(got.astype(np.longdouble) - reference) / ulp
    assert float(error.max()) < 0.9  # fdlibm's bound is 1 ulp; measured 0.86


def _hard_rows(dtype: type) -> list[np.ndarray]:
    """Near one-hot rows, uniform rows, rows with many zeros, at row lengths whose
    entry counts leave every remainder modulo the entropy loop's four streams."""
    rng = np.random.default_rng(7)
    eps = float(np.finfo(dtype).eps)
    blocks = []
    for rows, k in [(9, 10), (7, 3), (5, 5), (3, 1000), (11, 7), (1, 1), (257, 13)]:
        one_hot = np.full((rows, k), eps / max(k - 1, 1))
        one_hot[np.arange(rows), rng.integers(0, k, rows)] = 1.0 - eps
        uniform = np.full((rows, k), 1.0 / k)
        sparse = rng.dirichlet(np.full(k, 0.3), rows)
        sparse[rng.random((rows, k)) < 0.7] = 0.0
        sparse[:, 0] += 1.0 - sparse.sum(axis=1)
        blocks += [one_hot.astype(dtype), uniform.astype(dtype), sparse.astype(dtype)]
    return blocks


def _exact_entropy(row: np.ndarray) -> float:
    with mpmath.workdps(40):
        terms = [mpmath.mpf(p) * _exact_log(p) for p in row.astype(np.float64).tolist() if p > 0]
        return float(-mpmath.fsum(terms))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_issue13_vector_log_entropies_no_worse_than_the_c_library(dtype: type) -> None:
    for rows in _hard_rows(dtype):
        labels = np.zeros(rows.shape[0], dtype=np.intp)
        ent = _row_kernels.row_summaries(rows, labels, top=False, entropy=True, limit=1.0)[5]
        assert ent is not None
        wide = rows.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(wide > 0, wide * np.log(wide), 0.0)  # the C library's log
        libm = np.array([-sum(row.tolist(), 0.0) for row in terms])  # in row order
        exact = np.array([_exact_entropy(row) for row in rows])
        allowed = np.abs(libm - exact) + np.spacing(np.abs(exact))
        assert np.all(np.abs(ent - exact) <= allowed), (rows.shape, ent, exact)
        if dtype == np.float64 and rows.shape[1] > 1 and np.all(rows == rows[0, 0]):
            # uniform rows of float64 1/k: log k to the rounding of 1/k
            np.testing.assert_allclose(
                ent, math.log(rows.shape[1]), rtol=4 * 2.0**-52 * rows.shape[1]
            )


def _cpu_flag(flag: str) -> bool:
    if platform.machine().lower() not in {"x86_64", "amd64"}:
        return False
    try:
        with open("/proc/cpuinfo") as info:
            return f" {flag}" in info.read()
    except OSError:
        return False


def test_issue13_vector_log_entropy_loop_uses_vector_divisions() -> None:
    if not _cpu_flag("avx2"):
        pytest.skip("needs an x86-64 CPU with AVX2 (Numba compiles for the host)")
    import numba

    from crossent.calibration import _row_kernels_numba as kernels

    # the entropy loop compiled afresh (the cached kernels' code cannot be inspected),
    # with the flags of the kernels that inline it
    @numba.njit(fastmath=kernels._FLAGS)
    def entropy_loop(flat: np.ndarray, terms: np.ndarray) -> None:
        kernels.entropy_terms(flat, 0, flat.size, terms)

    flat = np.full(4096, 0.1, dtype=np.float32)
    terms = np.empty(flat.size)
    entropy_loop(flat, terms)
    wide = flat.astype(np.float64)
    np.testing.assert_array_equal(terms, wide * _row_kernels.log_positive(wide))
    (asm,) = entropy_loop.inspect_asm().values()
    # the logarithm's division s = f / (2 + f), four doubles at a time; eight on an
    # AVX-512 CPU (entropy_terms asks LLVM for 512-bit vectors: prefer_wide_vectors)
    assert re.search(r"vdivpd\s+%zmm" if numba_target_has("avx512f") else r"vdivpd\s+%ymm", asm)
