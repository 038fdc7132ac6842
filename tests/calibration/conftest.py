"""Fixtures shared by the calibration tests."""

from __future__ import annotations

import pytest

from crossent.calibration import _row_kernels


@pytest.fixture(params=["numba", "numpy"])
def row_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the public functions on the Numba row kernels and on their NumPy twin."""
    if request.param == "numba":
        pytest.importorskip("numba")
    else:
        monkeypatch.setattr(_row_kernels, "available", lambda: False)
    return str(request.param)
