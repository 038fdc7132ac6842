"""The softmax kernels a test runs: Numba's, or the NumPy twins with ``EXACT_ALL`` on or off.

A test fixture names the path; :func:`use_kernel_path` switches the process to it (with
``monkeypatch``, undone after the test).
"""

from __future__ import annotations

import pytest

from crossent.losses import _cpu_kernels, _numpy_kernels

__all__ = ["use_kernel_path"]


def use_kernel_path(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``"numba"``: Numba's kernels (the test skips where Numba is not installed);
    ``"numpy_exact_all"``: the NumPy twins with ``EXACT_ALL`` on (AVX-512 machines'
    setting); any other name: the NumPy twins with it off (the float32 passes)."""
    if path == "numba":
        if not _cpu_kernels.available():
            pytest.skip("needs Numba")
        return
    monkeypatch.setattr(_cpu_kernels, "available", lambda: False)
    monkeypatch.setattr(_numpy_kernels, "EXACT_ALL", path == "numpy_exact_all")
