"""Issue 13, hostile pass 71 over the losses (NumPy): the label-smoothed sigmoid
cross-entropy gradient at logits past :math:`|x| = 700`.

``sigmoid_cross_entropy_grad`` forms :math:`\\sigma(x) - t_s`, :math:`t_s = (1-\\varepsilon)t
+ \\varepsilon/2`, as :math:`(1 - t_s)\\sigma(x) - t_s\\sigma(-x)`; entries where the two
terms cancel are formed again in double-double, but not past :math:`|x| = 700` (the
double-double's range), where :math:`\\sigma(-x) < 10^{-304}` leaves :math:`1 - t_s` as the
numerator itself. It was ``1 - fl(t_s)``, which keeps the rounding of :math:`t_s` (an ulp
of 1): at :math:`t = 1`, logit ``inf`` (or 1e300, 800) and :math:`\\varepsilon = 10^{-6}` the
gradient :math:`\\varepsilon/2` came out 1.26e6 float64 ulps off (12.5 at
:math:`\\varepsilon = 0.1`, 1008 at :math:`10^{-3}`). Now :math:`(1-\\varepsilon)(1-t) +
\\varepsilon/2` there (NumPy's Numba kernel and the namespace formula, so PyTorch's
``binary_cross_entropy_with_logits`` too). Oracle: mpmath at 50 digits.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import crossent

EPSILONS = [0.1, 1e-3, 1e-6]
ENTRIES = [(math.inf, 1.0), (1e300, 1.0), (800.0, 0.75), (-1e300, 0.0), (40.0, 1.0), (3.0, 1.0)]


def _ulps_off(value: float, x: float, t: float, eps: float) -> float:
    with mpmath.workdps(50):
        e, tt = mpmath.mpf(eps), mpmath.mpf(t)
        sigma = mpmath.mpf(1) if x == math.inf else 1 / (1 + mpmath.exp(-mpmath.mpf(x)))
        truth = sigma - (tt * (1 - e) + e / 2)
        return float(abs((mpmath.mpf(value) - truth) / truth) * 2**53)


@pytest.mark.parametrize("eps", EPSILONS)
@pytest.mark.parametrize("size", [1, 5000])  # the small calls' path and the kernel's blocks
def test_smoothed_sigmoid_gradient_past_the_double_double_range(eps, size):
    for x, t in ENTRIES:
        g = crossent.sigmoid_cross_entropy_grad(
            np.full(size, x), np.full(size, t), label_smoothing=eps, reduction="none"
        )
        assert _ulps_off(g[0], x, t, eps) <= 2.0, (x, t, eps, g[0])


def test_smoothed_sigmoid_gradient_of_torch_float64_past_the_range():
    torch = pytest.importorskip("torch")
    import crossent.torch as ct

    x = torch.tensor([math.inf, 1e300, 3.0], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    ct.binary_cross_entropy_with_logits(x, t, label_smoothing=1e-6, reduction="sum").backward()
    for value, entry in zip(x.grad.tolist(), [math.inf, 1e300, 3.0], strict=True):
        assert _ulps_off(value, entry, 1.0, 1e-6) <= 2.0, (entry, value)
