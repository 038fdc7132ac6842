"""Jensen-Shannon divergence never above its bound :math:`\\log 2` (1 bit), as its
docstring says (hostile18: two rows of (nearly) disjoint supports gave
0.6931471805599454 nats and 1.0000000000000002 bits, an ulp above the bound, where the
exact value rounds to ``math.log(2)``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent

# Logits: the only class both give mass is class 1, p_1 about 1e-19; exact JS below log 2.
P_LOGITS = np.array([-np.inf, -40.631250305952, -np.inf, -1.0321152910182878e-176, 2.02])
Q_LOGITS = np.array([-49.0, -49.0, -49.0, -2.7201471875550166e84, -np.inf])
# Probabilities of disjoint supports; their masses sum to 2 + 6.9e-17, so the exact JS
# of these values is log 2 (1 + 3.5e-17), which rounds to math.log(2).
P_PROBS = np.array([1.023365743524373e-301, 0.0, 0.09365321369365238, 0.0, 0.9063467863063476,
                    2.257047502469477e-301])  # fmt: skip
Q_PROBS = np.array([0.0, 0.31180034224628916, 0.0, 0.0, 0.0, 0.688199657753711])


@pytest.mark.parametrize("base", [None, 2.0])
def test_nearly_disjoint_logits_rows_are_log_2(base: float | None) -> None:
    want = 1.0 if base == 2.0 else math.log(2)
    got = crossent.js_divergence(P_LOGITS, Q_LOGITS, p_form="logits", q_form="logits", base=base)
    assert float(got) == want
    both = crossent.js_divergence(
        np.stack([P_LOGITS, Q_LOGITS]), np.stack([Q_LOGITS, P_LOGITS]), p_form="logits",
        q_form="logits", base=base,
    )  # fmt: skip
    assert both.tolist() == [want, want]


@pytest.mark.parametrize("base", [None, 2.0])
def test_disjoint_probability_rows_are_log_2(base: float | None) -> None:
    want = 1.0 if base == 2.0 else math.log(2)
    assert float(crossent.js_divergence(P_PROBS, Q_PROBS, base=base)) == want
    assert float(crossent.js_divergence(Q_PROBS, P_PROBS, base=base)) == want


def test_cap_keeps_longdouble_and_nan() -> None:
    """The cap is log 2 in the result's precision: long double keeps its own log 2
    (above float64's), and NaN (validate=False) stays NaN."""
    p = np.array([1.0, 0.0], dtype=np.longdouble)
    got = crossent.js_divergence(p, p[::-1].copy())
    assert got == np.log(np.longdouble(2))
    nan = crossent.js_divergence(np.array([np.nan, 0.5]), np.array([0.5, 0.5]), validate=False)
    assert math.isnan(float(nan))
