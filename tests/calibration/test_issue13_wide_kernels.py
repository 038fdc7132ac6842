"""Issue 13, evaluation item: the kernels' flat loops use 512-bit vectors on AVX-512 CPUs.

LLVM's tuning for Intel's AVX-512 cores prefers 256-bit vectors, so the Numba kernels
used ``ymm`` registers there.  ``_row_kernels_numba``'s flat loops whose results do not
depend on the vector width (the entropy terms, the labels' range check, the entries'
check; ``totals`` and ``chunk_scores``, which have no reassociation) ask for 512-bit
vectors (``prefer_wide_vectors``); the reassociated row sums (``row_sums``,
``sums_and_top``, the entropy's per-row sums in ``chunk_rows``) do not, so that their
order, hence their bits, stays the same.  These tests compile the loops afresh (the
cached kernels' code cannot be inspected) and look for ``zmm`` registers where the CPU
has AVX-512, and in the row sums' loop for the CPU's default width (that of a control
loop with the same flags).  Checked against the mutants: the
``prefer_wide_vectors()`` call removed from ``label_error`` or ``entries_suspect`` fails
the first test; added to ``row_sums``, the second.
"""

from __future__ import annotations

import numpy as np
import pytest

from crossent.calibration import _row_kernels

from numba_target import numba_target_has

pytestmark = pytest.mark.skipif(not _row_kernels.available(), reason="needs Numba")


def _avx512() -> bool:
    return numba_target_has("avx512f")


def _asm(kernel) -> str:  # type: ignore[no-untyped-def]
    (asm,) = kernel.inspect_asm().values()
    return str(asm)


@pytest.mark.skipif(not _avx512(), reason="needs Numba to target AVX-512")
def test_issue13_flat_checks_use_512_bit_vectors() -> None:
    import numba

    from crossent.calibration import _row_kernels_numba as kernels

    @numba.njit
    def labels_check(labels: np.ndarray, k: int) -> int:
        return kernels.label_error(labels, 0, k)

    @numba.njit
    def entries_check(entries: np.ndarray) -> bool:
        return kernels.entries_suspect(entries)

    labels = np.arange(1000) % 7
    assert labels_check(labels, 7) == 0
    assert labels_check(labels, 6) == -1 - 6
    entries = np.full(1000, 0.25, dtype=np.float32)
    assert not entries_check(entries)
    entries[500] = np.nan
    assert entries_check(entries)
    assert "zmm" in _asm(labels_check)
    assert "zmm" in _asm(entries_check)


def test_issue13_row_sums_keep_their_vector_width() -> None:
    # The row sums must keep the CPU's default vector width (not ask for 512 bits):
    # compared with a control loop of the same flags and shape that asks for nothing.
    # Where LLVM's tuning for the CPU prefers 256-bit vectors (Intel's AVX-512 cores),
    # both use no zmm register; where it prefers 512-bit ones (AMD Zen 4 and 5), both
    # do, and a request for wide vectors in row_sums would change nothing there.
    import numba

    from crossent.calibration import _row_kernels_numba as kernels

    @numba.njit(fastmath=kernels._FLAGS, inline="never")
    def control(values: np.ndarray, p_label: np.ndarray, others: np.ndarray) -> int:
        n, k = values.shape
        for i in range(n):
            total = 0.0
            squares = 0.0
            for j in range(k):
                x = np.float64(values[i, j])
                total += x
                squares += x * x
            p_label[i] = total
            others[i] = squares
        return 0

    @numba.njit
    def sums(values: np.ndarray, labels: np.ndarray, out: np.ndarray) -> int:
        return kernels.row_sums(values, labels, True, False, 1e-3, out[0], out[1])

    @numba.njit
    def control_sums(values: np.ndarray, labels: np.ndarray, out: np.ndarray) -> int:
        return control(values, out[0], out[1])

    values = np.full((64, 40), 1 / 40)
    out = np.empty((2, 64))
    assert sums(values, np.zeros(64, dtype=np.intp), out) == 0
    np.testing.assert_allclose(out[1], 39 / 1600)
    assert control_sums(values, np.zeros(64, dtype=np.intp), out) == 0
    np.testing.assert_allclose(out[1], 1 / 40)
    assert ("zmm" in _asm(sums)) == ("zmm" in _asm(control_sums))
