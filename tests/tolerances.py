"""THE tolerances of the test suite: by kind of computation and by dtype, justified here.

Every floating-point comparison in ``tests/`` takes its tolerance from this module, so
that the reason for each number is written once and a loosened test shows up in review.
Pick the kind that describes how the value under test is *computed*, and compare against
an independent float64 (or mpmath) truth::

    assert_close(got, truth, CLOSED_FORM)              # dtype taken from ``got``
    np.testing.assert_allclose(got, truth, **SUM.tol(np.float32))
    assert got == SOLVER.approx(truth)

Kinds (relative ``rtol``; ``atol`` only where the truth can be 0)
-----------------------------------------------------------------
``ROUNDING``
    The same number computed two exact-by-design ways (two code paths, a shifted or
    permuted input, an mpmath value at 50 digits): a few roundings apart.  float64
    ``rtol`` 1e-14: measured agreement is <= 4e-16 for the mpmath KL cases
    (``tests/info/test_oracles.py``), 3e-13 absolute on logits of size ~1e3 for shift
    invariance (hence the ``atol`` scale there, see ``SHIFTED``); float32 4 ulps.
``SHIFTED``
    Results of inputs shifted by a constant ``c`` (softmax shift invariance): the shift
    itself rounds each logit by ``ulp(c)/2``, so the error is absolute, ~``|c|`` eps.
    float64 ``atol`` 1e-11 for ``|c| <= 1e3`` (measured 3e-13 with ``|c| = 1e3``), float32
    ``atol`` 1e-3.
``CLOSED_FORM``
    A closed form against an independent formula (SciPy, torch float64, a hand-written
    reference) whose condition number may reach ~1e3 (cancellation in ``H(p) - H(p,q)``,
    ``log(1 - p)`` near 1): float64 1e-12 leaves 10-100x margin over the worst measured
    case without hiding a wrong formula (off by 1e-3 or more).  float32: terms rounded
    to float32 (eps 1.2e-7) and summed in float64: 1e-5 covers conditioning up to ~100.
``SUM``
    Means and sums over up to ~1e5 terms accumulated in a different order (batched vs
    one-shot, merged states, per-bin statistics): error grows like sqrt(n) eps; float64
    ``rtol`` 1e-13, ``atol`` 1e-15 for sums that cancel to 0.
``SERIALIZED``
    A number written to JSON and read back (``repr`` of a float64 round-trips exactly,
    so this is the golden files' formatting): float64 ``rtol`` 1e-12 covers a value
    recomputed on another platform's libm (1-2 ulp per transcendental call, up to a
    few hundred calls).
``FLOAT32_KERNEL``
    A float32 input through the fused kernels or the generic path, against the float64
    result: each term is exact in float64 after the upcast, and only the final rounding
    to float32 is left: ``rtol`` 4e-7 (about 3 float32 ulps), ``atol`` 1e-7.
``LOW_PRECISION``
    float16 / bfloat16 inputs computed in float32 against the float64 result of the
    *same rounded inputs*: float32 arithmetic, so float32's ``CLOSED_FORM`` bound
    (``rtol`` 1e-5); the rounding of the inputs themselves is the caller's, not ours.
``SOLVER``
    Iterative solutions (temperature scaling's Newton with ``xtol`` 1e-8 or finer, a
    generic SciPy optimiser as oracle): the oracle's own stopping rule dominates;
    ``rtol`` 1e-6.
``FINITE_DIFFERENCE``
    Central differences of step ~1e-6 against an analytic gradient: truncation
    O(h^2) and cancellation O(eps / h) give ~1e-9 relative; ``rtol`` 1e-7, ``atol``
    1e-9 (see ``tests/finite_differences.py``).

Statistical tolerances (a planted temperature recovered within 15 %, a bootstrap
interval covering the truth) are not floating-point errors: they stay beside their test,
with their derivation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

__all__ = [
    "CLOSED_FORM",
    "FINITE_DIFFERENCE",
    "FLOAT32_KERNEL",
    "LOW_PRECISION",
    "ROUNDING",
    "SERIALIZED",
    "SHIFTED",
    "SOLVER",
    "SUM",
    "Kind",
    "assert_close",
    "atol",
    "close",
    "rtol",
]


def _key(dtype: object) -> str:
    """``"float64"`` or ``"float32"`` for a NumPy or torch dtype (low precision -> float32)."""
    name = str(dtype).removeprefix("torch.")
    if name in ("float64", "double", "<class 'float'>", "float"):
        return "float64"
    if name in ("float32", "float", "float16", "half", "bfloat16"):
        return "float32"
    return str(np.dtype(dtype))  # type: ignore[call-overload]


@dataclass(frozen=True)
class Kind:
    """A kind of computation and its ``(rtol, atol)`` per dtype (keys "float64", "float32")."""

    name: str
    float64: tuple[float, float]
    float32: tuple[float, float]

    def pair(self, dtype: object = np.float64) -> tuple[float, float]:
        key = _key(dtype)
        if key not in ("float64", "float32"):
            raise KeyError(f"no {self.name} tolerance for dtype {dtype}")
        return self.float64 if key == "float64" else self.float32

    def tol(self, dtype: object = np.float64) -> dict[str, float]:
        """``rtol``/``atol`` keywords for ``np.testing.assert_allclose`` or ``np.isclose``."""
        r, a = self.pair(dtype)
        return {"rtol": r, "atol": a}

    def approx(self, expected: Any, dtype: object = np.float64) -> Any:
        """``pytest.approx`` with this tolerance."""
        r, a = self.pair(dtype)
        return pytest.approx(expected, rel=r, abs=a)


_F32_EPS = float(np.finfo(np.float32).eps)

ROUNDING = Kind("rounding", float64=(1e-14, 0.0), float32=(4 * _F32_EPS, 0.0))
SHIFTED = Kind("shifted", float64=(1e-14, 1e-11), float32=(4 * _F32_EPS, 1e-3))
CLOSED_FORM = Kind("closed form", float64=(1e-12, 1e-14), float32=(1e-5, 1e-6))
SUM = Kind("sum", float64=(1e-13, 1e-15), float32=(1e-5, 1e-6))
SERIALIZED = Kind("serialized", float64=(1e-12, 1e-15), float32=(1e-5, 1e-6))
FLOAT32_KERNEL = Kind("float32 kernel", float64=(1e-12, 1e-14), float32=(4e-7, 1e-7))
LOW_PRECISION = Kind("low precision", float64=(1e-12, 1e-14), float32=(1e-5, 1e-6))
SOLVER = Kind("solver", float64=(1e-6, 1e-9), float32=(1e-5, 1e-6))
FINITE_DIFFERENCE = Kind("finite difference", float64=(1e-7, 1e-9), float32=(1e-3, 1e-4))


def _dtype_of(value: Any) -> object:
    dtype = getattr(value, "dtype", None)
    return np.float64 if dtype is None else dtype


def assert_close(actual: Any, expected: Any, kind: Kind, dtype: object = None) -> None:
    """``assert_allclose`` with ``kind``'s tolerance for ``dtype`` (default: ``actual``'s)."""
    dtype = _dtype_of(actual) if dtype is None else dtype
    actual = actual.detach().cpu().double().numpy() if hasattr(actual, "detach") else actual
    expected = expected.detach().cpu().double().numpy() if hasattr(expected, "detach") else expected
    np.testing.assert_allclose(
        np.asarray(actual, dtype=np.float64),
        np.asarray(expected, dtype=np.float64),
        **kind.tol(dtype),
    )


def close(actual: float, expected: float, kind: Kind, dtype: object = np.float64) -> bool:
    """Whether two scalars agree within ``kind``'s tolerance (``math.isclose`` semantics)."""
    r, a = kind.pair(dtype)
    return math.isclose(float(actual), float(expected), rel_tol=r, abs_tol=a)


def rtol(dtype: object) -> float:
    """``CLOSED_FORM``'s relative tolerance (kept for the oracle tests' call sites)."""
    return CLOSED_FORM.pair(dtype)[0]


def atol(dtype: object) -> float:
    """``CLOSED_FORM``'s absolute tolerance."""
    return CLOSED_FORM.pair(dtype)[1]
