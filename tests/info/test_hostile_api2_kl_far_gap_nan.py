r"""Hostile API pass 2: the KL of rows whose logits span more than the float64 range.

``kl_divergence([1.7e308, 0, -1.7e308], [0, 0, 0], p_form='logits', q_form='logits')``
is :math:`\log 3` (P is one-hot, Q uniform) and passes validation, but NumPy's fused
kernel returned NaN (somewhere in its exact shifted sums, not traced further: a gap
:math:`x_i - m` past the range is ``-inf``); PyTorch's tensors, on the generic path,
gave :math:`\log 3`. Found by a sweep against mpmath of rows mixing
:math:`\pm 1.7\cdot 10^{308}`, :math:`10^{300}`, subnormals and :math:`-745`: 17 NaN
KLs in 3000 rows (logits or log-probabilities on either side). The fix takes NaN rows
again from the generic path. Oracle: mpmath at 2400 bits from the given floats. All 8
cases fail on main.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import crossent


@mpmath.workprec(2400)
def _kl(p: list[float], q: list[float], p_form: str, q_form: str) -> float:
    def logs(row: list[float], form: str) -> list[mpmath.mpf]:
        v = [mpmath.mpf(x) for x in row]
        if form == "probs":
            return [mpmath.log(x) if x > 0 else -mpmath.inf for x in v]
        if form == "log_probs":
            return v
        finite = [x for x in v if x != -mpmath.inf]
        top = max(finite)
        lse = top + mpmath.log(mpmath.fsum(mpmath.exp(x - top) for x in finite))
        return [x - lse for x in v]

    total = mpmath.mpf(0)
    for a, b in zip(logs(p, p_form), logs(q, q_form), strict=True):
        if a == -mpmath.inf:
            continue
        if b == -mpmath.inf:
            return float("inf")
        total += mpmath.exp(a) * (a - b)
    return float(total)


_CASES = [
    ([1.7e308, 0.0, -1.7e308], [0.0, 0.0, 0.0], "logits", "logits"),
    ([1.7e308, -800.0, -1.7e308, 700.0], [-931.85, 896.93, -1286.68, 687.57], "logits", "logits"),
    ([1.7e308, 1e-310, -1.7e308], [-0.0477, 0.6587, 0.0810], "logits", "logits"),
    ([-1e300, -1.7e308], [1.7e308, 8.7e-19], "logits", "logits"),
    ([1.7e308, -1.0, 0.0], [-1.70000001e308, -1e300, 0.0], "logits", "log_probs"),
    ([-1.70000001e308, -1e300, -1e300, 0.0], [1.7e308, 1e-310, 1e300, 0.0], "log_probs", "logits"),
    ([1.0, 0.0, 0.0, 0.0], [1.7e308, -1.7e308, 1.0, 5e-324], "probs", "logits"),
    ([-1.0, -1e300, 700.0, -5e-324], [1.7e308, -745.1, 1.7e308, -1e300], "logits", "logits"),
]


@pytest.mark.parametrize(("p", "q", "p_form", "q_form"), _CASES)
def test_kl_of_rows_past_the_range_is_not_nan(
    p: list[float], q: list[float], p_form: str, q_form: str
) -> None:
    want = _kl(p, q, p_form, q_form)
    assert np.isfinite(want)
    kwargs = {"p_form": p_form, "q_form": q_form}
    got = crossent.kl_divergence(np.array(p), np.array(q), **kwargs)
    assert got == pytest.approx(want, rel=1e-13, abs=1e-300)
    parts = crossent.cross_entropy_decomposition(np.array(p), np.array(q), **kwargs)
    assert float(parts.kl_divergence) == pytest.approx(want, rel=1e-13, abs=1e-300)
    # a batch beside an ordinary row, in bits
    ordinary = [0.25] * len(p) if p_form == "probs" else [float(np.log(0.25))] * len(p)
    if p_form == "logits":
        ordinary = [0.0] * len(p)
    batch = crossent.kl_divergence(np.array([p, ordinary]), np.array([q, q]), base=2, **kwargs)
    assert batch[0] == pytest.approx(_bits(want), rel=1e-13, abs=1e-300)
    assert batch[1] == pytest.approx(_bits(_kl(ordinary, q, p_form, q_form)), rel=1e-12)


def _bits(nats: float) -> float:
    """``nats / log 2``, ``inf`` past the range (as the measures give it)."""
    return float(mpmath.mpf(nats) / mpmath.log(2))
