"""The float64 KL of logits whose log-partitions differ by a far gap (Q's maximum near
1e308 above P's) where P's logits are large too (hostile18).

The fused kernel's exact sums (``_fused_kernels._bregman64_sums``) gave the far terms
P's probability without the shift of the other terms' ratios, which ``_kl_shifted``
then removed from every term: 1.1e-9 relative off for P's logits at 1e8, 3 % at
1.1e16 (6.98e307 for 6.53e307), where the generic path and the cross-entropy are exact.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent

GAP = 8.161353490723936e307


def _exact_kl(level: float, n: int) -> float:
    r"""P uniform over ``n`` classes (logits all ``level``), Q all its mass on class 3
    (logit ``GAP``, 0 elsewhere): :math:`D = \tfrac{n-1}{n}\,\mathrm{GAP} - \log n`
    (the other classes' :math:`\log q` is :math:`-\mathrm{GAP}` to within
    :math:`e^{-\mathrm{GAP}}`); in float64 the log is below an ulp of the gap's term."""
    return (n - 1) / n * GAP - math.log(n)


@pytest.mark.parametrize("level", [1e8, 1e14, 1.1409814059337414e16])
@pytest.mark.parametrize("q_form", ["logits", "log_probs"])
def test_far_gap_kl_with_large_p_logits_is_exact(level: float, q_form: str) -> None:
    n = 6
    p = np.full(n, level)
    q = np.zeros(n)
    q[3] = GAP
    if q_form == "log_probs":
        q = q - GAP  # exact: log q_3 = 0, the others -GAP
    want = _exact_kl(level, n)
    got = float(crossent.kl_divergence(p, q, p_form="logits", q_form=q_form))
    assert got == pytest.approx(want, rel=4 * 2.0**-52)
    # the identity with the cross-entropy (which was right) holds again
    cross = float(crossent.cross_entropy(p, q, p_form="logits", q_form=q_form))
    assert got == pytest.approx(cross - math.log(n), rel=4 * 2.0**-52)


def test_far_gap_kl_found_row_matches_cross_entropy_minus_entropy() -> None:
    """The row hypothesis found (P's -inf class, Q's mass on one far logit): 6.98e307
    on main for the exact 6.5290827925791488e307 (mpmath at 50 digits)."""
    h = 1.1409814059337414e16
    p = np.array([h, -np.inf, h, h, h, h])
    q = np.array([-2.9245597802980114, 0.0, h, GAP, 0.0, 0.0])
    got = float(crossent.kl_divergence(p, q, p_form="logits", q_form="logits"))
    assert got == pytest.approx(6.5290827925791488e307, rel=4 * 2.0**-52)
