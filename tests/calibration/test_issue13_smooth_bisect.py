"""Issue 13, ``crossent report`` end to end: the smooth calibration error's bandwidth
without ``scipy.optimize``.

The bandwidth's fixed point was ``scipy.optimize.bisect``, whose import took 0.25 s of
CPU (a fifth of a small report's).  ``_smooth._bisect`` runs SciPy's iteration
(``Zeros/bisect.c``); the oracle is SciPy itself: the same root, bit for bit, on the
smooth calibration error of random models and on functions with roots at awkward
places (on a halving point, near the ends, a tiny slope), and the report's path no
longer imports ``scipy.optimize`` (which fails on main).
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy import optimize

import crossent
from crossent.calibration import _smooth


def _scipy_fixed_point(smoother: _smooth._Smoother, low: float) -> float:
    def excess(sigma: float) -> float:
        return smoother.value(sigma) - sigma

    if excess(low) <= 0 or excess(1.0) >= 0:
        pytest.skip("no bisection on this draw")
    return float(optimize.bisect(excess, low, 1.0, xtol=_smooth.BANDWIDTH_TOL))


@pytest.mark.parametrize("seed", range(12))
def test_the_bandwidth_is_scipys_bisection(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 3000))
    confidence = rng.beta(5, 1 + seed % 3, size=n)
    hits = (rng.random(n) < confidence ** (1 + seed % 4)).astype(np.float64)
    smoother = _smooth._Smoother(confidence, hits)
    ours = _smooth._fixed_point(smoother, 1e-3)
    assert ours.hex() == _scipy_fixed_point(smoother, 1e-3).hex()


@pytest.mark.parametrize(
    ("function", "low", "high"),
    [
        (lambda x: 0.3 - x, 0.0, 1.0),
        (lambda x: 0.5 - x, 0.0, 1.0),  # the root on the first halving point
        (lambda x: 0.375 - x, 0.0, 1.0),
        (lambda x: 1e-3 - x + 1e-9, 1e-3, 1.0),  # near the low end
        (lambda x: 0.9999999 - x, 1e-3, 1.0),  # near the high end
        (lambda x: 1e-12 * (math.pi / 10 - x), 1e-3, 1.0),  # a tiny slope
        (lambda x: math.cos(7 * x), 0.0, 0.4),
        (lambda x: -math.expm1(x - 0.61), 1e-3, 1.0),
    ],
)
def test_the_iteration_is_scipys(function: object, low: float, high: float) -> None:
    for xtol in (1e-7, 1e-12, 1e-3):
        expected = optimize.bisect(function, low, high, xtol=xtol)  # type: ignore[arg-type]
        ours = _smooth._bisect(function, low, high, function(low), xtol=xtol)  # type: ignore[operator,arg-type]
        assert ours.hex() == float(expected).hex(), xtol


def test_a_report_does_not_import_scipy_optimize() -> None:
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        import crossent
        rng = np.random.default_rng(0)
        logits = rng.normal(size=(400, 4)) * 3
        labels = rng.integers(0, 4, size=400)
        crossent.report(logits, labels, form="logits", resamples=20)
        print("scipy.optimize" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert crossent.__name__ == "crossent"
