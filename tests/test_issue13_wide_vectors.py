"""``prefer_wide_vectors``: the LLVM attribute that lets Numba use 512-bit vectors."""

from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")
llvm = pytest.importorskip("llvmlite.binding")

from crossent._intrinsics_numba import prefer_wide_vectors  # noqa: E402

from numba_target import numba_target_has  # noqa: E402


def _scaled_sum(x: np.ndarray) -> float:
    total = 0.0
    for i in range(x.shape[0]):
        total += np.float64(x[i]) * 1.5
    return total


def _wide_scaled_sum(x: np.ndarray) -> float:
    prefer_wide_vectors()
    total = 0.0
    for i in range(x.shape[0]):
        total += np.float64(x[i]) * 1.5
    return total


def _compiled(function):  # type: ignore[no-untyped-def]
    kernel = numba.njit(fastmath=True)(function)
    x = np.linspace(0.0, 1.0, 1001, dtype=np.float32)
    assert kernel(x) == pytest.approx(1.5 * float(x.astype(np.float64).sum()), rel=1e-12)
    return kernel, kernel.signatures[0]


def test_the_attribute_is_on_the_calling_function_only() -> None:
    wide, signature = _compiled(_wide_scaled_sum)
    plain, plain_signature = _compiled(_scaled_sum)
    assert '"prefer-vector-width"="512"' in wide.inspect_llvm(signature)
    assert "prefer-vector-width" not in plain.inspect_llvm(plain_signature)


@pytest.mark.skipif(not numba_target_has("avx512f"), reason="needs Numba to target AVX-512")
def test_zmm_registers_where_the_cpu_has_avx512() -> None:
    wide, signature = _compiled(_wide_scaled_sum)
    assert "zmm" in wide.inspect_asm(signature)
