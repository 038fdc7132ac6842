"""Issue 13: the shared bit-reinterpreting intrinsics (``crossent._intrinsics_numba``).

They reinterpret bits exactly as NumPy's ``view`` does, and only the compiled kernel
modules (the ``*_numba.py`` ones and ``info/_fused_kernels.py``, each importing Numba
itself and imported on first use) import them, so ``import crossent`` does not import
Numba.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import crossent

_SOURCE = Path(crossent.__file__).parent


def test_issue13_only_numba_kernel_modules_import_the_intrinsics() -> None:
    importers = {
        path.relative_to(_SOURCE).as_posix()
        for path in _SOURCE.rglob("*.py")
        if re.search(r"^from \S*_intrinsics_numba import", path.read_text(), re.MULTILINE)
    }
    assert "losses/_cpu_kernels_numba.py" in importers
    kernels = {
        path.relative_to(_SOURCE).as_posix()
        for path in _SOURCE.rglob("*.py")
        if re.search(r"^import numba$", path.read_text(), re.MULTILINE)
    }
    assert importers <= kernels, importers - kernels
    assert all(name.endswith("_numba.py") or name == _INFO_KERNELS for name in importers)


_INFO_KERNELS = "info/_fused_kernels.py"  # the measures' compiled kernels (older name)


def test_issue13_import_crossent_imports_no_numba() -> None:
    code = (
        "import sys, crossent;"
        "print(sorted(m for m in ('numba', 'llvmlite', 'crossent._intrinsics_numba')"
        " if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_issue13_intrinsics_reinterpret_bits_as_numpy_views() -> None:
    numba = pytest.importorskip("numba")
    from crossent._intrinsics_numba import bits_to_float32, bits_to_float64, float64_to_bits

    @numba.njit
    def casts(x: float, k: int) -> tuple[int, float, float]:
        return float64_to_bits(x), bits_to_float64(k), bits_to_float32(np.int32(k))

    for x, k in [(1.0, 0x3FF0000000000000), (-0.0, -1), (np.inf, 0x7F800000), (5e-324, 1)]:
        to_bits, to_float64, to_float32 = casts(x, k)
        assert to_bits == np.float64(x).view(np.int64)
        assert np.float64(to_float64).view(np.int64) == k
        assert np.float32(to_float32).view(np.int32) == np.int64(k).astype(np.int32)
