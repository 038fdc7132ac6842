"""What a process's first calls import and load, and that the results stay the same (issue 13).

* ``smooth_calibration_error`` (and so every ``crossent report``) found its bandwidth
  with ``scipy.optimize.bisect``: ``from scipy import optimize`` (with ``scipy.sparse``,
  ``scipy.fft``, ``scipy.spatial``) cost 0.09-0.15 s of CPU for a dozen-line loop.
  ``_smooth._bisect`` is SciPy's ``Zeros/bisect.c`` step for step; the oracle here is
  SciPy's own ``bisect``, bit for bit.
* The first small sigmoid loss call of a dtype picked the float64 focal gradient's
  ``difference`` too, importing ``_sigmoid_grad_numba`` (and building its tables) and
  loading one more kernel; now that is picked at the first float64 focal gradient.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

import crossent
from crossent.calibration import _smooth
from crossent.losses import _cpu_kernels, _small_sigmoid
from crossent.losses._sigmoid import _focal_binary


def _smoothers() -> list[_smooth._Smoother]:
    """The smoothers of a few data sets whose fixed point is inside (min, 1)."""
    rng = np.random.default_rng(13)
    found = []
    for n, power in ((40, 1.0), (300, 0.3), (1000, 2.5), (5000, 1.0)):
        confidence = rng.uniform(0.0, 1.0, n) ** power
        hits = (rng.uniform(0.0, 1.0, n) < rng.uniform(0.0, 1.0, n)).astype(np.float64)
        found.append(_smooth._Smoother(confidence, hits))
    return found


def test_smooth_bisect_is_scipys_bisect_bit_for_bit() -> None:
    """``_smooth._bisect`` returns what ``scipy.optimize.bisect(f, a, b, xtol=...)``
    returns, bit for bit: on the smECE's own functions and on 300 decreasing functions
    with roots anywhere in (a, 1), tolerances from 1e-15 to 1e-2 (fails on main: no
    ``_bisect``)."""
    optimize = pytest.importorskip("scipy.optimize")
    cases = []
    for smoother in _smoothers():
        cases.append((lambda s, m=smoother: m.value(s) - s, _smooth.MIN_BANDWIDTH, 1e-7))
    rng = np.random.default_rng(7)
    for k in range(300):
        root, slope = rng.uniform(1e-3, 0.999), rng.uniform(0.1, 10.0)
        low, tol = rng.uniform(0.0, root), 10.0 ** rng.uniform(-15.0, -2.0)
        if k % 3 == 0:
            cases.append((lambda x, r=root, s=slope: math.tanh(s * (r - x)), low, tol))
        elif k % 3 == 1:
            cases.append((lambda x, r=root, s=slope: s * (r - x) ** 3, low, tol))
        else:  # a step: exactly 0 nowhere, the sign flips at ``root``
            cases.append((lambda x, r=root: 1.0 if x < r else -1.0, low, tol))
    for f, low, tol in cases:
        assert f(low) > 0 > f(1.0)
        ours = _smooth._bisect(f, low, 1.0, tol)
        theirs = optimize.bisect(f, low, 1.0, xtol=tol)
        assert ours == theirs, (low, tol, ours, theirs)
        assert type(ours) is float


def test_smooth_calibration_error_imports_no_scipy_optimize(monkeypatch) -> None:
    """The smECE's fixed point runs without ``scipy.optimize`` (an import of it fails
    here; fails on main), at SciPy's bisection's bandwidth (a guard: passes on main)."""
    optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(4), 500)
    labels = rng.integers(0, 4, 500)
    confidence = probs.max(axis=1)
    hits = (probs.argmax(axis=1) == labels).astype(np.float64)
    smoother = _smooth._Smoother(confidence, hits)
    want = optimize.bisect(lambda s: smoother.value(s) - s, 1e-3, 1.0, xtol=_smooth.BANDWIDTH_TOL)
    import scipy

    monkeypatch.delattr(scipy, "optimize", raising=False)
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)  # an import raises
    got = crossent.calibration.smooth_calibration_error(probs, labels)
    assert got.bandwidth == want
    assert got.value == pytest.approx(want, abs=1e-6)


@pytest.mark.skipif(not _cpu_kernels.available(), reason="the small path needs Numba")
def test_small_sigmoid_loss_picks_no_difference_kernel(monkeypatch) -> None:
    """A dtype's first small sigmoid loss and gradient calls pick their stages without
    ``_sigmoid_grad_numba`` (fails on main: its table held ``difference``); the float64
    focal gradient picks ``difference`` at its first call, as the full path's bits."""
    asked: list[int] = []
    real = _small_sigmoid._exact_compiled

    def spy() -> object:
        asked.append(1)
        return real()

    monkeypatch.setattr(_small_sigmoid, "_exact_compiled", spy)
    for char in ("d", "f"):
        monkeypatch.delitem(_small_sigmoid._STEPS, char, raising=False)
    monkeypatch.setattr(_small_sigmoid, "_DIFFERENCE", {}, raising=False)
    rng = np.random.default_rng(5)
    for dtype in (np.float64, np.float32):
        x = rng.standard_normal(12).astype(dtype)
        t = (rng.uniform(size=12) < 0.5).astype(dtype)
        crossent.sigmoid_cross_entropy(x, t)
        crossent.sigmoid_focal_loss(x, t)
        assert set(_small_sigmoid._STEPS) >= {np.dtype(dtype).char}
    assert not asked
    x, t = rng.standard_normal(12), (rng.uniform(size=12) < 0.5).astype(np.float64)
    got = crossent.sigmoid_focal_loss_grad(x, t)
    assert asked
    assert "d" in _small_sigmoid._DIFFERENCE
    assert "f" not in _small_sigmoid._DIFFERENCE
    want = crossent.sigmoid_focal_loss_grad.__wrapped__(_focal_binary(x, t))  # the full path
    assert got.tobytes() == want.tobytes()
